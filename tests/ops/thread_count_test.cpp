// Results do not depend on the number of threads: the ops that split work across the pool (tiled GEMMs, row-wise
// norms and losses, TTT's objectives, the column-split norm weight gradient) and a whole forward + backward
// of each architecture at a size where every split kicks in, run on pools of 1, 2 and 3 threads, give the same bits.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "../moe/model_gradcheck.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "ops/linear.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/token_objectives.h"

namespace wattmoe::test {
namespace {

std::vector<float> randoms(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.uniform() * 2 - 1);
  return v;
}

// The bits of a double, carried in two floats' worth of bytes (to compare with same_bits).
std::vector<float> bits_of(double v) {
  std::vector<float> f(2);
  std::memcpy(f.data(), &v, sizeof v);
  return f;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs fn on pools of 1, 2 and 3 threads; every run's outputs must equal the first's bit for bit.
template <class Fn>
void expect_same_on_any_pool(const char* what, Fn fn) {
  std::vector<std::vector<float>> first;
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    PoolScope scope(pool);
    std::vector<std::vector<float>> out = fn();
    if (first.empty()) {
      first = out;
      continue;
    }
    ASSERT_EQ(out.size(), first.size());
    for (size_t i = 0; i < out.size(); ++i)
      EXPECT_TRUE(same_bits(out[i], first[i])) << what << ": output " << i << " differs on " << threads << " threads";
  }
}

TEST(ThreadCount, TiledGemmShapes) {
  // Shapes of the model's products (tokens x features, the transposed weight-gradient form) and odd sizes.
  struct Shape {
    bool ta, tb;
    int64_t M, N, K;
  };
  for (Shape s : {Shape{false, true, 2048, 128, 128}, Shape{false, false, 1031, 256, 128}, Shape{true, false, 128, 256, 2048},
                  Shape{true, false, 8, 1000, 2048}, Shape{false, true, 700, 513, 96}}) {
    const auto A = randoms(size_t(s.M * s.K), 1), B = randoms(size_t(s.K * s.N), 2), C0 = randoms(size_t(s.M * s.N), 3);
    expect_same_on_any_pool("gemm", [&] {
      std::vector<float> c0 = C0, c1 = C0;
      const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
      ops::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, c0.data(), s.N);
      ops::gemm<float>(s.ta, s.tb, s.M, s.N, s.K, 0.5f, A.data(), lda, B.data(), ldb, 1.0f, c1.data(), s.N);
      return std::vector<std::vector<float>>{c0, c1};
    });
  }
}

TEST(ThreadCount, NormsAndLosses) {
  const int64_t rows = 1500, dim = 128, V = 256;
  const auto x = randoms(size_t(rows * dim), 4), w = randoms(size_t(dim), 5), dy = randoms(size_t(rows * dim), 6);
  auto logits = randoms(size_t(rows * V), 7);
  for (auto& v : logits) v *= 8;
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) targets[size_t(i)] = int32_t((i * 37) % V) - (i % 50 == 0 ? 1000 : 0);
  for (auto& t : targets) t = t < 0 ? -1 : t;
  expect_same_on_any_pool("rmsnorm / nll / entropy", [&] {
    std::vector<float> y(x.size()), rstd(static_cast<size_t>(rows)), dx(x.size(), 0.25f), dw(static_cast<size_t>(dim), 0.5f), dl(logits.size()),
        de(logits.size());
    ops::rmsnorm_fwd<float>(x.data(), w.data(), y.data(), rstd.data(), rows, dim, 1e-5);
    ops::rmsnorm_bwd<float>(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), rows, dim);
    const double nll = ops::nll_loss<float>(logits.data(), targets.data(), rows, V, dl.data(), 1.0 / rows);
    const double ent = ops::entropy_loss<float>(logits.data(), rows, V, de.data(), 1.0 / rows);
    // TTT's objectives add into their buffers: the next-token loss, the gated entropy (TENT/EATA), the mean entropy
    std::vector<float> dn(logits.size(), 0.125f), dg(logits.size(), -0.25f);
    const double ntn = next_token_nll<float>(logits.data(), targets.data(), rows, V, 0.7, dn.data());
    const double ment = mean_entropy<float>(logits.data(), rows, V);
    double kept = 0;  // gated at the mean entropy: about half the rows pass
    const double gent = gated_entropy<float>(logits.data(), rows, V, ment, 0.3, dg.data(), &kept);
    EXPECT_GT(kept, 0.05);
    EXPECT_LT(kept, 0.95);  // the gate keeps some rows and drops others
    return std::vector<std::vector<float>>{y,  rstd, dx, dw, dl, de, dn, dg, bits_of(nll), bits_of(ent), bits_of(ntn),
                                           bits_of(gent), bits_of(ment)};
  });
}

TEST(ThreadCount, ModelForwardBackward) {
  for (NamedConfig nc : all_arch_configs(2)) {
    SCOPED_TRACE(nc.name);
    ModelConfig& c = nc.config;  // large enough that GEMM tiles, expert tasks and row splits all engage
    c.vocab_size = 256, c.hidden_size = 128, c.head_dim = 32, c.num_experts = 8;
    c.intermediate_size = c.moe_intermediate_size = 256;
    if (c.shared_expert_intermediate_size > 0) c.shared_expert_intermediate_size = 256;
    const int B = 8, S = 128;
    Transformer<float> m(c);
    const std::vector<float> p = random_params<float>(m.layout(), 11);
    const std::vector<int32_t> ids = random_ids(B * S, c.vocab_size, 12);
    expect_same_on_any_pool(nc.name.c_str(), [&] {
      Activations<float> acts;
      m.forward(p.data(), ids.data(), B, S, acts);
      std::vector<float> dlogits(acts.logits.size()), grads(p.size(), 0.0f);
      objective_loss<float>(Objective::Nll, acts.logits.data(), ids.data(), B, S, c.vocab_size, dlogits.data());
      m.router_aux_losses(acts, 0.01, 0.001);
      m.backward(p.data(), ids.data(), dlogits.data(), acts, grads.data());
      return std::vector<std::vector<float>>{acts.logits, grads};
    });
  }
}

}  // namespace
}  // namespace wattmoe::test
