// safetensors: u64 little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}}, optional "__metadata__": {str: str}), then the data.
// Offsets are relative to the end of the header. Every field is validated; any problem is a wattmoe::Error whose
// message starts with the file's path and says what is wrong.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/json.h"

namespace wattmoe {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data section
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // sorted by begin offset
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + N
};

// Parses and validates a header from the first `size` bytes of a file whose total size is `file_size`.
// `what` names the file in error messages. Pure function (no I/O): the fuzz target drives it.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size, uint64_t file_size,
                                           const std::string& what);

// A safetensors file mapped read-only into memory.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // Error if missing
  // A zero-copy view into the mapping (kept alive by the tensor). Unaligned data is copied.
  Tensor get(const std::string& name) const;

 private:
  std::string path_;
  SafetensorsHeader header_;
  std::shared_ptr<void> map_;  // the mapping; unmapped when the last view goes
  const uint8_t* base_ = nullptr;
  std::map<std::string, size_t> index_;
};

// Writes tensors (CPU, any dtype) in the given order, 8-byte aligned data, metadata in "__metadata__".
// Writes to a temporary file beside `path` and renames it, so a crash never leaves a half-written file.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory as HF writes it: model.safetensors, or model.safetensors.index.json with its shards
// ({"weight_map": {tensor: shard file}}), or a single *.safetensors file when only one exists.
// model.safetensors.index.json: every weight_map value a file name inside dir (no absolute path, no ".."); shards in
// the order first named. Errors name index_path (fuzz/shard_index_fuzz.cpp).
struct ShardIndex {
  std::map<std::string, std::string> weight_map;  // tensor -> shard file
  std::vector<std::string> shards;
};
ShardIndex parse_shard_index(const Json& idx, const std::string& index_path, const std::string& dir);

class CheckpointReader {
 public:
  static CheckpointReader open(const std::string& dir);
  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // Error naming the directory if missing
  Tensor get(const std::string& name) const;

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

}  // namespace wattmoe
