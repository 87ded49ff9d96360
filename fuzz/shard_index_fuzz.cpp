// model.safetensors.index.json (io/safetensors.h): every shard a plain relative name, each listed once.
#include <filesystem>
#include <set>

#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattmoe::fuzz::accept_or_refuse([&] {
    const wattmoe::ShardIndex idx = wattmoe::parse_shard_index(
        wattmoe::parse_json(wattmoe::fuzz::text(data, size), "index.json"), "index.json", "/ckpt");
    const std::set<std::string> uniq(idx.shards.begin(), idx.shards.end());
    if (uniq.size() != idx.shards.size()) __builtin_trap();
    for (const std::string& s : idx.shards) {
      if (s.empty() || s[0] == '/') __builtin_trap();
      for (const auto& part : std::filesystem::path(s))
        if (part == "..") __builtin_trap();
    }
  });
  return 0;
}
