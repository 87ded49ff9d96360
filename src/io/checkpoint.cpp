// CheckpointReader: finds the safetensors files of an HF checkpoint directory and indexes their tensors.
#include <algorithm>
#include <filesystem>

#include "io/json.h"
#include "io/safetensors.h"

namespace wattmoe {

namespace fs = std::filesystem;

namespace {

// A shard name from an index must stay inside the checkpoint directory.
bool is_plain_relative(const std::string& name) {
  fs::path p(name);
  if (name.empty() || p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

// A shard, symbolic links followed, must stay inside the checkpoint directory — or, for a snapshot of the Hugging
// Face hub cache (.../snapshots/REV/, whose files link to ../../blobs/), inside that repository's blobs/.
void check_shard_inside(const std::string& dir, const std::string& shard) {
  std::error_code ec;
  const fs::path real = fs::canonical(fs::path(dir) / shard, ec);
  if (ec) return;  // missing: opening it names the file
  const fs::path root = fs::canonical(dir, ec);
  const auto inside = [&](const fs::path& top) {
    const auto [t, r] = std::mismatch(top.begin(), top.end(), real.begin(), real.end());
    return t == top.end();
  };
  const bool hub = root.parent_path().filename() == "snapshots";
  WATTMOE_REQUIRE(inside(root) || (hub && inside(root.parent_path().parent_path() / "blobs")),
                  "{}: shard '{}' resolves to {}, outside the checkpoint directory", dir, shard, real.string());
}

std::vector<std::string> safetensors_in(const std::string& dir) {
  std::vector<std::string> r;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->path().extension() == ".safetensors" && it->is_regular_file(ec2))
      r.push_back(it->path().filename());
  }
  WATTMOE_REQUIRE(!ec, "{}: cannot list directory ({})", dir, ec.message());
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace

ShardIndex parse_shard_index(const Json& idx, const std::string& index_path, const std::string& dir) {
  WATTMOE_REQUIRE(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(),
                  "{}: expected an object with a \"weight_map\" object (tensor name -> shard file)", index_path);
  ShardIndex r;
  for (const auto& [tensor, shard] : idx["weight_map"].items()) {
    WATTMOE_REQUIRE(shard.is_string(), "{}: weight_map[\"{}\"] must be a file name, got {}", index_path, tensor,
                    shard.type_name());
    const std::string& s = shard.get_ref<const std::string&>();
    WATTMOE_REQUIRE(is_plain_relative(s), "{}: shard '{}' must be a file inside {}", index_path, s, dir);
    r.weight_map[tensor] = s;
    if (std::find(r.shards.begin(), r.shards.end(), s) == r.shards.end()) r.shards.push_back(s);
  }
  return r;
}

CheckpointReader CheckpointReader::open(const std::string& dir) {
  std::error_code ec;
  WATTMOE_REQUIRE(fs::is_directory(dir, ec), "{}: not a directory (expected an HF checkpoint directory)",
                  dir);
  CheckpointReader r;
  r.dir_ = dir;
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;  // tensor -> shard file, when there is an index
  std::vector<std::string> shards;
  // exists(), not file_exists(): a FIFO or device under one of these names is refused by name when opened.
  const auto present = [](const std::string& p) {
    std::error_code e;
    return fs::exists(p, e);
  };
  if (present(index_path)) {
    ShardIndex idx = parse_shard_index(read_json_file(index_path), index_path, dir);
    weight_map = std::move(idx.weight_map), shards = std::move(idx.shards);
    for (const auto& s : shards)
      WATTMOE_REQUIRE(present(dir + "/" + s), "{}: shard '{}' is missing from {}", index_path, s, dir);
  } else if (present(dir + "/model.safetensors")) {
    shards = {"model.safetensors"};
  } else {
    shards = safetensors_in(dir);
    WATTMOE_REQUIRE(!shards.empty(),
                    "{}: no checkpoint found (looked for model.safetensors.index.json, model.safetensors, "
                    "or a single *.safetensors file)",
                    dir);
    WATTMOE_REQUIRE(
        shards.size() == 1,
        "{}: {} *.safetensors files ({}, ...) but no model.safetensors.index.json saying which to load", dir,
        shards.size(), shards[0]);
  }

  for (const auto& s : shards) {
    check_shard_inside(dir, s);
    r.files_.push_back(SafetensorsFile::open(dir + "/" + s));
    for (const TensorInfo& t : r.files_.back().tensors()) {
      auto [it, fresh] = r.where_.emplace(t.name, r.files_.size() - 1);
      WATTMOE_REQUIRE(fresh, "{}: tensor '{}' is in two shards ({} and {})", dir, t.name,
                      r.files_[it->second].path(), r.files_.back().path());
    }
  }
  for (const auto& [tensor, shard] : weight_map) {
    auto it = r.where_.find(tensor);
    WATTMOE_REQUIRE(it != r.where_.end() && r.files_[it->second].path() == dir + "/" + shard,
                    "{}: weight_map puts tensor '{}' in shard '{}', which does not hold it", index_path,
                    tensor, shard);
  }
  return r;
}

std::vector<std::string> CheckpointReader::names() const {
  std::vector<std::string> r;
  for (const auto& [name, i] : where_) r.push_back(name);
  return r;  // std::map iterates sorted
}

bool CheckpointReader::has(const std::string& name) const {
  return where_.count(name) != 0;
}

const TensorInfo& CheckpointReader::info(const std::string& name) const {
  auto it = where_.find(name);
  WATTMOE_REQUIRE(it != where_.end(), "{}: checkpoint has no tensor named '{}'", dir_, name);
  return files_[it->second].info(name);
}

Tensor CheckpointReader::get(const std::string& name) const {
  info(name);  // the error names the directory, not a shard
  return files_[where_.at(name)].get(name);
}

}  // namespace wattmoe
