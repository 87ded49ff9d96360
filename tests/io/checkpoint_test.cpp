// CheckpointReader: sharded (index.json), single file, and every way a checkpoint directory can be wrong.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/json.h"
#include "io/safetensors.h"
#include "io_test_util.h"

namespace wattmoe {
namespace {

using test::expect_error;
using test::TempDir;

Tensor vec(std::vector<float> v) {
  Shape s{int64_t(v.size())};
  return Tensor::from_vector(v, s);
}

// Two shards and an index, as HF's save_pretrained writes them.
void write_sharded(const TempDir& d, const Json& weight_map) {
  write_safetensors(d.file("model-00001-of-00002.safetensors"), {{"a", vec({1, 2})}, {"b", vec({3})}});
  write_safetensors(d.file("model-00002-of-00002.safetensors"), {{"c", vec({4, 5, 6})}});
  write_json_file(d.file("model.safetensors.index.json"),
                  {{"metadata", {{"total_size", 24}}}, {"weight_map", weight_map}});
}

const Json kGoodMap = {{"a", "model-00001-of-00002.safetensors"},
                       {"b", "model-00001-of-00002.safetensors"},
                       {"c", "model-00002-of-00002.safetensors"}};

TEST(Checkpoint, ReadsShardedCheckpoint) {
  TempDir d;
  write_sharded(d, kGoodMap);
  Tensor c;
  {
    auto r = CheckpointReader::open(d.path());
    EXPECT_EQ(r.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_TRUE(r.has("b"));
    EXPECT_FALSE(r.has("d"));
    EXPECT_EQ(r.info("c").shape, (Shape{3}));
    EXPECT_EQ(r.get("a").to_f32_vector(), (std::vector<float>{1, 2}));
    c = r.get("c");
    expect_error([&] { r.get("d"); }, d.path() + ": ", "checkpoint has no tensor named 'd'");
  }
  EXPECT_EQ(c.to_f32_vector(), (std::vector<float>{4, 5, 6}));  // outlives the reader
}

TEST(Checkpoint, IndexErrors) {
  TempDir d;
  const std::string idx = d.file("model.safetensors.index.json") + ": ";
  Json missing = kGoodMap;
  missing["z"] = "model-00003-of-00003.safetensors";
  write_sharded(d, missing);
  expect_error([&] { CheckpointReader::open(d.path()); }, idx,
               "shard 'model-00003-of-00003.safetensors' is missing");

  Json wrong = kGoodMap;
  wrong["c"] = "model-00001-of-00002.safetensors";
  write_sharded(d, wrong);
  expect_error(
      [&] { CheckpointReader::open(d.path()); }, idx,
      "weight_map puts tensor 'c' in shard 'model-00001-of-00002.safetensors', which does not hold it");

  Json absent = kGoodMap;
  absent["zz"] = "model-00002-of-00002.safetensors";
  write_sharded(d, absent);
  expect_error([&] { CheckpointReader::open(d.path()); }, idx, "tensor 'zz'");

  Json escape = kGoodMap;
  escape["c"] = "../model-00002-of-00002.safetensors";
  write_sharded(d, escape);
  expect_error([&] { CheckpointReader::open(d.path()); }, idx, "must be a file inside");

  write_sharded(d, kGoodMap);
  write_json_file(d.file("model.safetensors.index.json"), {{"weight_map", {{"a", 3}}}});
  expect_error([&] { CheckpointReader::open(d.path()); }, idx, "weight_map[\"a\"] must be a file name");
  write_json_file(d.file("model.safetensors.index.json"), {{"metadata", {}}});
  expect_error([&] { CheckpointReader::open(d.path()); }, idx, "\"weight_map\" object");
  test::write_bytes(d.file("model.safetensors.index.json"), "{\"weight_map\": ");
  expect_error([&] { CheckpointReader::open(d.path()); }, idx, "malformed JSON");
}

// A shard symlinked outside the checkpoint directory was accepted; the hub cache's snapshots/REV -> ../../blobs is not
// outside.
TEST(Checkpoint, ShardMustResolveInsideTheDirectory) {
  TempDir d;
  const std::filesystem::path root = d.path();
  std::filesystem::create_directories(root / "ckpt");
  std::filesystem::create_directories(root / "elsewhere");
  write_safetensors((root / "elsewhere" / "w.safetensors").string(), {{"a", vec({1, 2})}});
  std::filesystem::create_symlink("../elsewhere/w.safetensors", root / "ckpt" / "model.safetensors");
  expect_error([&] { CheckpointReader::open((root / "ckpt").string()); }, (root / "ckpt").string() + ": ",
               "shard 'model.safetensors' resolves to " + (root / "elsewhere" / "w.safetensors").string() +
                   ", outside the checkpoint directory");

  const std::filesystem::path snap = root / "models--org--m" / "snapshots" / "abc123", blobs = root / "models--org--m" / "blobs";
  std::filesystem::create_directories(snap);
  std::filesystem::create_directories(blobs);
  write_safetensors((blobs / "5f2e").string(), {{"a", vec({1, 2})}});
  std::filesystem::create_symlink("../../blobs/5f2e", snap / "model.safetensors");
  EXPECT_EQ(CheckpointReader::open(snap.string()).get("a").to_f32_vector(), (std::vector<float>{1, 2}));
}

TEST(Checkpoint, TensorInTwoShardsIsAnError) {
  TempDir d;
  write_sharded(d, kGoodMap);
  write_safetensors(d.file("model-00002-of-00002.safetensors"), {{"c", vec({4, 5, 6})}, {"a", vec({9})}});
  expect_error([&] { CheckpointReader::open(d.path()); }, d.path() + ": ", "tensor 'a' is in two shards");
}

TEST(Checkpoint, SingleFileForms) {
  TempDir d;
  write_safetensors(d.file("other.safetensors"), {{"x", vec({1})}});
  EXPECT_EQ(CheckpointReader::open(d.path()).names(), std::vector<std::string>{"x"});  // the only one
  write_safetensors(d.file("model.safetensors"), {{"y", vec({2})}});
  EXPECT_EQ(CheckpointReader::open(d.path()).names(),
            std::vector<std::string>{"y"});  // model.safetensors wins
  ::unlink(d.file("model.safetensors").c_str());
  write_safetensors(d.file("third.safetensors"), {{"z", vec({3})}});
  expect_error([&] { CheckpointReader::open(d.path()); }, d.path() + ": ",
               "2 *.safetensors files (other.safetensors, ...) but no model.safetensors.index.json");
}

TEST(Checkpoint, DirectoryErrors) {
  TempDir d;
  expect_error([&] { CheckpointReader::open(d.path()); }, d.path() + ": ",
               "no checkpoint found (looked for model.safetensors.index.json, model.safetensors, or a single "
               "*.safetensors file)");
  expect_error([&] { CheckpointReader::open(d.file("nope")); }, d.file("nope") + ": ", "not a directory");
}

}  // namespace
}  // namespace wattmoe
