// Bad input at the library level: a copy of a fixture (tests/fixtures/mixtral_gqa) corrupted one way at a time —
// truncated or empty model.safetensors, header length beyond the file, overlapping or out-of-range offsets, a tensor
// whose dtype or shape disagrees with config.json, a missing tensor, a non-finite value, an unknown model_type,
// malformed or inconsistent config.json — must raise wattmoe::Error (never abort) with one line that names the file
// (and the tensor or field) and says what is wrong. Also bad ids, an overfull KV cache and bad objectives.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>

#include "../test_util.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/objective.h"
#include "model/transformer.h"

namespace wattmoe::test {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A safetensors image split into its JSON header and data section.
struct StFile {
  Json header;
  std::string data;
  static StFile read(const std::string& path) {
    const std::string b = read_bytes(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b[size_t(i)]);
    return {Json::parse(b.substr(8, n)), b.substr(8 + n)};
  }
  // Removes a tensor and its bytes, so the others stay contiguous (the safetensors rule).
  void drop(const std::string& name) {
    const uint64_t b = header[name]["data_offsets"][0].get<uint64_t>(), e = header[name]["data_offsets"][1].get<uint64_t>();
    header.erase(name);
    data.erase(b, e - b);
    for (auto& [k, v] : header.items())
      if (k != "__metadata__" && v["data_offsets"][0].get<uint64_t>() >= e)
        v["data_offsets"] = {v["data_offsets"][0].get<uint64_t>() - (e - b), v["data_offsets"][1].get<uint64_t>() - (e - b)};
  }
  std::string bytes() const {
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(uint64_t(h.size()) >> (8 * i)));
    return out + h + data;
  }
};

// A fresh copy of the fixture's model (config.json + model.safetensors only).
class BadModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch_dir("model");
    const std::string src = source_path("tests/fixtures/mixtral_gqa");
    fs::copy_file(src + "/config.json", dir_ + "/config.json");
    fs::copy_file(src + "/model.safetensors", dir_ + "/model.safetensors");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string st() const { return dir_ + "/model.safetensors"; }
  std::string cfg() const { return dir_ + "/config.json"; }

  // load_model<float> and <double> must both throw Error, one line, naming `who` and saying `phrase`.
  void expect_load_error(const std::string& who, const std::string& phrase) {
    for (int prec = 0; prec < 2; ++prec) {
      try {
        if (prec == 0) {
          load_model<float>(dir_);
        } else {
          load_model<double>(dir_);
        }
        ADD_FAILURE() << "loaded a corrupted model; expected an error naming " << who << " with \"" << phrase << "\"";
      } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find(who), std::string::npos) << "message does not name " << who << ": " << m;
        EXPECT_NE(m.find(phrase), std::string::npos) << "message lacks \"" << phrase << "\": " << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << "message is not one line: " << m;
      }
    }
  }
  void edit_header(const std::function<void(Json&)>& f) {
    StFile s = StFile::read(st());
    f(s.header);
    write_file(st(), s.bytes());
  }
  void edit_config(const std::function<void(Json&)>& f) {
    Json j = Json::parse(read_bytes(cfg()));
    f(j);
    write_file(cfg(), j.dump(2));
  }

  std::string dir_;
};

TEST_F(BadModel, IntactCopyLoads) {
  const ModelWeights<float> m = load_model<float>(dir_);
  EXPECT_EQ(m.config.num_experts, 4);
  EXPECT_EQ(int64_t(m.params.size()), m.layout.total());
}

TEST_F(BadModel, TruncatedInData) {
  const std::string b = read_bytes(st());
  write_file(st(), b.substr(0, b.size() / 2));
  expect_load_error(st(), "beyond the data section");
}

TEST_F(BadModel, TruncatedInHeader) {
  write_file(st(), read_bytes(st()).substr(0, 100));
  expect_load_error(st(), "beyond the end of the file");
}

TEST_F(BadModel, TruncatedInLengthField) {
  write_file(st(), read_bytes(st()).substr(0, 5));
  expect_load_error(st(), "shorter than the 8-byte header length");
}

TEST_F(BadModel, EmptyFile) {
  write_file(st(), "");
  expect_load_error(st(), "empty");
}

TEST_F(BadModel, HeaderLengthBeyondFile) {
  std::string b = read_bytes(st());
  const uint64_t n = b.size() + 1000;
  for (int i = 0; i < 8; ++i) b[size_t(i)] = char(uint8_t(n >> (8 * i)));
  write_file(st(), b);
  expect_load_error(st(), "goes beyond the end of the file");
}

TEST_F(BadModel, HeaderIsNotJson) {
  std::string b = read_bytes(st());
  b[8] = '#';
  write_file(st(), b);
  expect_load_error(st(), "not valid JSON");
}

TEST_F(BadModel, OverlappingOffsets) {
  // Two [32] norm weights (128 bytes each): make the second start inside the first.
  edit_header([](Json& h) {
    auto& a = h["model.layers.0.input_layernorm.weight"]["data_offsets"];
    auto& b = h["model.layers.0.post_attention_layernorm.weight"]["data_offsets"];
    const uint64_t begin = a[0].get<uint64_t>() + 64;
    b = {begin, begin + 128};
  });
  expect_load_error(st(), "overlapping byte ranges");
}

TEST_F(BadModel, OffsetsOutOfRange) {
  uint64_t data_size = 0;
  edit_header([&](Json& h) {
    for (auto& [k, v] : h.items())
      if (k != "__metadata__") data_size = std::max(data_size, v["data_offsets"][1].get<uint64_t>());
    h["model.norm.weight"]["data_offsets"] = {data_size + 8, data_size + 8 + 128};
  });
  expect_load_error(st(), "model.norm.weight");
  expect_load_error(st(), "beyond the data section");
}

TEST_F(BadModel, OffsetsDisagreeWithShape) {
  edit_header([](Json& h) {
    auto& o = h["model.norm.weight"]["data_offsets"];
    o = {o[0].get<uint64_t>(), o[1].get<uint64_t>() - 4};
  });
  expect_load_error(st(), "model.norm.weight");
}

TEST_F(BadModel, IntegerDtype) {
  edit_header([](Json& h) { h["model.layers.1.block_sparse_moe.gate.weight"]["dtype"] = "I32"; });  // same size as F32
  expect_load_error("model.layers.1.block_sparse_moe.gate.weight", "dtype I32");
}

TEST_F(BadModel, ShapeDisagreesWithConfig) {
  edit_header([](Json& h) { h["model.norm.weight"]["shape"] = {16, 2}; });  // same number of bytes
  expect_load_error("model.norm.weight", "shape [16, 2] but config.json implies [32]");
}

TEST_F(BadModel, ShapeFromAnotherConfig) {
  // config.json says 3 experts: the router [4, 32] no longer fits.
  edit_config([](Json& j) { j["num_local_experts"] = 3; });
  expect_load_error("model.layers.0.block_sparse_moe.gate.weight", "config.json implies [3, 32]");
}

TEST_F(BadModel, MissingTensor) {
  StFile s = StFile::read(st());
  s.drop("model.layers.1.self_attn.k_proj.weight");
  write_file(st(), s.bytes());
  expect_load_error("model.layers.1.self_attn.k_proj.weight", "missing tensor");
}

TEST_F(BadModel, NonFiniteValue) {
  StFile s = StFile::read(st());
  const uint64_t b = s.header["model.norm.weight"]["data_offsets"][0].get<uint64_t>();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&s.data[b + 12], &nan, 4);
  write_file(st(), s.bytes());
  expect_load_error("model.norm.weight", "non-finite value at index 3");
}

TEST_F(BadModel, UnknownModelType) {
  edit_config([](Json& j) { j["model_type"] = "gpt2"; });
  expect_load_error(cfg(), "unsupported model_type \"gpt2\"");
}

TEST_F(BadModel, MalformedConfig) {
  const std::string t = read_bytes(cfg());
  write_file(cfg(), t.substr(0, t.size() / 2));
  expect_load_error(cfg(), "malformed JSON");
}

TEST_F(BadModel, ConfigIsNotAnObject) {
  write_file(cfg(), "[1, 2, 3]");
  expect_load_error(cfg(), "must be a JSON object");
}

TEST_F(BadModel, ConfigMissingField) {
  edit_config([](Json& j) { j.erase("vocab_size"); });
  expect_load_error(cfg(), "missing required field \"vocab_size\"");
}

TEST_F(BadModel, ConfigFieldOfWrongType) {
  edit_config([](Json& j) { j["hidden_size"] = "thirty-two"; });
  expect_load_error(cfg(), "field \"hidden_size\" must be an integer, got a string (\"thirty-two\")");
}

// Values of the wrong JSON type used to be converted silently: true ran one layer, 4.9 became 4, 2^32 + 256 became
// 256, 1 became true. Each field now takes its exact type and range, and the error names it.
TEST_F(BadModel, ConfigFieldsTakeTheirExactType) {
  struct Case {
    const char* key;
    Json value;
    const char* phrase;
  };
  const Case cases[] = {{"num_hidden_layers", true, "must be an integer, got a boolean (true)"},
                        {"hidden_size", 4.9, "must be an integer, got a float (4.9)"},
                        {"hidden_size", 32.0, "must be an integer, got a float"},
                        {"vocab_size", 4294967552LL, "is out of range: 4294967552"},
                        {"num_attention_heads", -4294967292LL, "is out of range"},
                        {"tie_word_embeddings", 1, "must be true or false, got an integer (1)"},
                        {"rms_norm_eps", true, "must be a number, got a boolean"},
                        {"rms_norm_eps", "1e-5", "must be a number, got a string"},
                        {"max_position_embeddings", 1e10, "must be an integer"},
                        {"num_local_experts", Json::array({4}), "must be an integer, got an array"}};
  for (const Case& c : cases) {
    const Json original = Json::parse(read_bytes(cfg()));
    edit_config([&](Json& j) { j[c.key] = c.value; });
    expect_load_error(cfg(), std::string("field \"") + c.key + "\" " + c.phrase);
    write_file(cfg(), original.dump(2));
  }
  edit_config([](Json& j) { j["rms_norm_eps"] = 12345; });
  std::string t = read_bytes(cfg());
  t.replace(t.find("12345"), 5, "1e999");  // not a double: the JSON reader refuses it
  write_file(cfg(), t);
  expect_load_error(cfg(), "number overflow parsing '1e999'");
}

// Sizes whose parameter count overflows int64 (UB in the layout) or exceeds 2^40 are refused by validate().
TEST_F(BadModel, ConfigParameterCountBeyondTheLimit) {
  edit_config([](Json& j) {
    j["hidden_size"] = 2147483646, j["intermediate_size"] = 2147483646, j["num_local_experts"] = 2147483646;
    j["head_dim"] = 2;
  });
  expect_load_error(cfg(), "parameters");
}

TEST_F(BadModel, ConfigInconsistentHeads) {
  edit_config([](Json& j) { j["num_key_value_heads"] = 3; });
  expect_load_error(cfg(), "must be a multiple of num_key_value_heads");
}

TEST_F(BadModel, ConfigTopKAboveExperts) {
  edit_config([](Json& j) { j["num_experts_per_tok"] = 5; });
  expect_load_error(cfg(), "num_experts_per_tok (5)");
}

// A config.json whose sizes are far beyond the checkpoint: load_model compares every tensor shape before it
// allocates, so this is a shape error, not "std::bad_alloc" (or an ASan abort on a 5 TB request).
TEST_F(BadModel, ConfigSizesFarBeyondTheCheckpoint) {
  edit_config([](Json& j) { j["hidden_size"] = 1 << 20; });  // 400M parameters, 1.6 GB if allocated first
  expect_load_error("model.embed_tokens.weight", "config.json implies");
}

TEST_F(BadModel, MissingConfig) {
  fs::remove(cfg());
  expect_load_error(cfg(), "");
}

TEST_F(BadModel, NotADirectory) {
  const std::string d = dir_;
  dir_ += "/nope";
  expect_load_error(dir_, "");
  dir_ = d;
}

// Errors at run time: ids outside the vocabulary, a KV cache too small, bad objective arguments.
template <class F>
void expect_error(F&& f, const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "expected an Error with \"" << phrase << "\"";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(phrase), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(BadRuntimeInput, IdsOutsideVocabulary) {
  ModelConfig c;
  c.vocab_size = 11, c.hidden_size = 8, c.num_layers = 1, c.num_heads = 2, c.num_kv_heads = 1, c.head_dim = 4;
  c.intermediate_size = c.moe_intermediate_size = 4, c.num_experts = 2, c.top_k = 1;
  Transformer<float> m(c);
  std::vector<float> p(size_t(m.layout().total()), 0.1f);
  Activations<float> acts;
  for (int32_t bad : {11, -1, 1 << 30}) {
    const std::vector<int32_t> ids{0, 3, bad, 2};
    expect_error([&] { m.forward(p.data(), ids.data(), 1, 4, acts); }, "outside the vocabulary");
  }
  KvCache<float> cache(1, 4, c.kv_dim());
  const std::vector<int32_t> ids{1, 2, 3};
  m.forward(p.data(), ids.data(), 1, 3, acts, &cache);
  expect_error([&] { m.forward(p.data(), ids.data(), 1, 2, acts, &cache); }, "exceeds the KV cache");
  EXPECT_EQ(cache.length, 3) << "a rejected step must not advance the cache";
}

TEST(BadRuntimeInput, Objectives) {
  expect_error([] { parse_objective("perplexity"); }, "unknown objective \"perplexity\"");
  const std::vector<float> logits(4, 0.0f);
  const std::vector<int32_t> ids{1, 2};
  std::vector<float> d(4);
  expect_error([&] { objective_loss<float>(Objective::Nll, logits.data(), ids.data(), 2, 1, 2, d.data()); },
               "at least 2 tokens");
}

}  // namespace
}  // namespace wattmoe::test
