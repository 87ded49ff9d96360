// SafetensorsFile (mmap read) and write_safetensors. Validation lives in safetensors_header.cpp.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "io/atomic_file.h"
#include "io/files.h"
#include "io/json.h"

namespace wattmoe {

namespace {

// Closes the descriptor on every path out of open(), errors included.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  Fd f{open_regular_file(path, "safetensors file")};  // never blocks on a FIFO; refuses anything but a regular file
  struct stat st {};
  WATTMOE_REQUIRE(::fstat(f.fd, &st) == 0, "{}: cannot stat ({})", path, std::strerror(errno));
  const uint64_t size = uint64_t(st.st_size);
  // mmap of 0 bytes fails with EINVAL; say what is really wrong.
  WATTMOE_REQUIRE(size > 0, "{}: file is empty (0 bytes), not a safetensors file", path);

  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.fd, 0);
  WATTMOE_REQUIRE(p != MAP_FAILED, "{}: cannot mmap {} bytes ({})", path, size, std::strerror(errno));
  SafetensorsFile r;
  r.map_ = std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); });
  r.base_ = static_cast<const uint8_t*>(p);
  r.path_ = path;
  r.header_ = parse_safetensors_header(r.base_, size, size, path);
  for (size_t i = 0; i < r.header_.tensors.size(); ++i) r.index_[r.header_.tensors[i].name] = i;
  return r;
}

bool SafetensorsFile::has(const std::string& name) const {
  return index_.count(name) != 0;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  WATTMOE_REQUIRE(it != index_.end(), "{}: no tensor named '{}'", path_, name);
  return header_.tensors[it->second];
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  // The mapping is read-only: callers must treat the view as const (writing to it faults).
  auto* p = const_cast<uint8_t*>(base_ + header_.data_start + t.begin);
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(t.dtype) == 0)
    return Tensor::view(t.dtype, t.shape, p, map_);
  // Misaligned (the writer did not pad the header): typed loads would be UB, so copy.
  Tensor r = Tensor::zeros(t.dtype, t.shape);
  std::memcpy(r.raw(), p, t.end - t.begin);
  return r;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json: tensors appear in the header in the order their data is laid out.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    WATTMOE_REQUIRE(name != "__metadata__", "{}: '__metadata__' is reserved and cannot name a tensor", path);
    WATTMOE_REQUIRE(names.insert(name).second, "{}: tensor '{}' given twice", path, name);
    WATTMOE_REQUIRE(t.device() == Device::CPU, "{}: tensor '{}' is not on the CPU; copy it to the host first",
                    path, name);
    WATTMOE_REQUIRE(t.nbytes() == 0 || t.raw() != nullptr, "{}: tensor '{}' has no data", path, name);
    // HF's reader requires the tensors to tile the data section without gaps, so none are added.
    h[name] = {{"dtype", dtype_name(t.dtype())},
               {"shape", t.shape()},
               {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // a name or metadata value that is not UTF-8
    fail("{}: cannot write safetensors header: {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as HF pads it
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  AtomicFile f(path);
  f.write(len, 8);
  f.write(text.data(), text.size());
  for (const auto& [name, t] : tensors)
    if (t.nbytes()) f.write(t.raw(), t.nbytes());
  f.commit();
}

}  // namespace wattmoe
