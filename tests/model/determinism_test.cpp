// Run-twice determinism on CPU: the same forward + backward gives bitwise-identical logits, router logits, losses and
// gradients (memcmp), also when the Activations object is reused; the result does not depend on the thread count
// (checked by running the wattmoe binary with WATTMOE_THREADS=1 and 3, since the in-process pool reads
// WATTMOE_THREADS once, at creation). KV-cache decoding (a prefix, then chunks and single tokens) reproduces the
// full forward's logits for each architecture.
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "../moe/model_gradcheck.h"
#include "../test_util.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"

namespace wattmoe::test {
namespace {

constexpr int kB = 3, kS = 33;

struct RunOutput {
  std::vector<float> logits, grads;
  std::vector<std::vector<float>> router_logits;
  double loss = 0, lb = 0, z = 0;
};

RunOutput run_once(const Transformer<float>& m, const std::vector<float>& p, const std::vector<int32_t>& ids,
                   Activations<float>& acts, bool aux) {
  RunOutput r;
  m.forward(p.data(), ids.data(), kB, kS, acts);
  std::vector<float> dlogits(acts.logits.size());
  r.loss = objective_loss<float>(Objective::Entropy, acts.logits.data(), ids.data(), kB, kS, m.config().vocab_size,
                                 dlogits.data());
  if (aux) {
    const AuxLossValues v = m.router_aux_losses(acts, 0.01, 0.001);
    r.lb = v.load_balance, r.z = v.z;
  }
  r.grads.assign(p.size(), 0.0f);
  m.backward(p.data(), ids.data(), dlogits.data(), acts, r.grads.data());
  r.logits = acts.logits;
  for (const auto& a : acts.layers) r.router_logits.push_back(a.router_logits);
  return r;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0);
}

void expect_identical(const RunOutput& a, const RunOutput& b, const char* what) {
  EXPECT_TRUE(same_bits(a.logits, b.logits)) << what << ": logits differ";
  EXPECT_TRUE(same_bits(a.grads, b.grads)) << what << ": gradients differ";
  ASSERT_EQ(a.router_logits.size(), b.router_logits.size());
  for (size_t l = 0; l < a.router_logits.size(); ++l)
    EXPECT_TRUE(same_bits(a.router_logits[l], b.router_logits[l])) << what << ": router logits of layer " << l;
  EXPECT_EQ(std::memcmp(&a.loss, &b.loss, sizeof(double)), 0) << what;
  EXPECT_EQ(std::memcmp(&a.lb, &b.lb, sizeof(double)), 0) << what;
  EXPECT_EQ(std::memcmp(&a.z, &b.z, sizeof(double)), 0) << what;
}

TEST(Determinism, RunTwiceIsBitwiseEqual) {
  for (const NamedConfig& nc : all_arch_configs(3)) {
    SCOPED_TRACE(nc.name);
    Transformer<float> m(nc.config);
    const std::vector<float> p = random_params<float>(m.layout(), 31);
    const std::vector<int32_t> ids = random_ids(kB * kS, nc.config.vocab_size, 32);
    Activations<float> a1, a2;
    const RunOutput r1 = run_once(m, p, ids, a1, true);
    const RunOutput r2 = run_once(m, p, ids, a2, true);
    expect_identical(r1, r2, "fresh activations");
    const RunOutput r3 = run_once(m, p, ids, a1, true);  // reuses a1's buffers: no stale state may leak in
    expect_identical(r1, r3, "reused activations");
    double gnorm = 0;
    for (float g : r1.grads) gnorm += double(g) * g;
    EXPECT_GT(gnorm, 0.0);
  }
}

// The wattmoe binary, next to the test binary's build tree.
std::string wattmoe_binary() { return std::string(WATTMOE_BINARY_DIR) + "/wattmoe"; }

TEST(Determinism, ThreadCountDoesNotChangeResults) {
  if (!std::filesystem::exists(wattmoe_binary())) GTEST_SKIP() << wattmoe_binary() << " is not built";
  const std::string dir = scratch_dir("threads");
  const ModelConfig c = qwen2moe_config(3);
  Transformer<float> m(c);
  const std::vector<float> p = random_params<float>(m.layout(), 41);
  save_model<float>(dir + "/model", c, m.layout(), p.data());
  const std::vector<int32_t> ids = random_ids(kB * kS, c.vocab_size, 42);
  write_safetensors(dir + "/input.safetensors",
                    {{"input_ids", Tensor::from_vector(std::vector<int64_t>(ids.begin(), ids.end()), {kB, kS})}});
  for (int threads : {1, 3}) {
    const std::string cmd = "WATTMOE_THREADS=" + std::to_string(threads) + " WATTMOE_LOG=off '" + wattmoe_binary() +
                            "' forward --model '" + dir + "/model' --input '" + dir + "/input.safetensors' --out '" +
                            dir + "/out" + std::to_string(threads) + ".safetensors' --grad entropy --all-grads";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  SafetensorsFile a = SafetensorsFile::open(dir + "/out1.safetensors"), b = SafetensorsFile::open(dir + "/out3.safetensors");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const TensorInfo& t : a.tensors()) {
    ASSERT_TRUE(b.has(t.name)) << t.name;
    const Tensor x = a.get(t.name), y = b.get(t.name);
    ASSERT_EQ(x.nbytes(), y.nbytes()) << t.name;
    EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0) << t.name << " differs between 1 and 3 threads";
  }
  // And both equal this process's own run (whatever its pool size).
  Activations<float> acts;
  const RunOutput r = run_once(m, p, ids, acts, false);
  const Tensor logits = a.get("logits");
  ASSERT_EQ(size_t(logits.numel()), r.logits.size());
  EXPECT_EQ(std::memcmp(logits.raw(), r.logits.data(), logits.nbytes()), 0) << "CLI logits differ from the library's";
  std::filesystem::remove_all(dir);
}

// KV-cache decoding: a prefix, then a chunk of 3 (Tq > 1 with pos0 > 0), then single tokens, each chunk's logits
// against the matching rows of the full forward.
template <class T>
void check_kv_cache(const NamedConfig& nc, double tol) {
  SCOPED_TRACE(nc.name);
  const ModelConfig& c = nc.config;
  const int S = 13, V = c.vocab_size;
  Transformer<T> m(c);
  const std::vector<T> p = random_params<T>(m.layout(), 51);
  const std::vector<int32_t> ids = random_ids(S, V, 52);
  Activations<T> full;
  m.forward(p.data(), ids.data(), 1, S, full);

  KvCache<T> cache(c.num_layers, 16, c.kv_dim());
  const std::vector<int> chunks{5, 3, 1, 1, 1, 1, 1};  // 13 tokens
  int pos = 0;
  for (int n : chunks) {
    Activations<T> step;
    m.forward(p.data(), ids.data() + pos, 1, n, step, &cache);
    EXPECT_EQ(step.pos0, pos);
    EXPECT_EQ(cache.length, pos + n);
    double err = 0;
    for (int64_t i = 0; i < int64_t(n) * V; ++i)
      err = std::max(err, std::abs(double(step.logits[i]) - double(full.logits[pos * V + i])));
    EXPECT_LE(err, tol) << "chunk of " << n << " tokens at position " << pos;
    for (int l = 0; l < c.num_layers; ++l) {
      const auto& r = step.layers[l].router_logits;
      for (size_t i = 0; i < r.size(); ++i)
        ASSERT_NEAR(double(r[i]), double(full.layers[l].router_logits[pos * c.num_experts + i]), tol)
            << "layer " << l << " position " << pos;
    }
    pos += n;
  }
  EXPECT_EQ(pos, S);
}

TEST(Determinism, KvCacheDecodingMatchesFullForward) {
  for (const NamedConfig& nc : all_arch_configs(3)) {
    // fp32: the cached path sums in the same order as the full one, so differences are a few ulps of logits O(1).
    check_kv_cache<float>(nc, 1e-5);
    // fp64: the same bound 1e-12 leaves room only for reordering, not for a wrong position or a stale key.
    check_kv_cache<double>(nc, 1e-12);
  }
}

}  // namespace
}  // namespace wattmoe::test
