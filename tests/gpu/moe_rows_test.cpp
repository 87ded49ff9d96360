// cuda::router_backward (ops/cuda/moe_rows.h) against the host path it replaces — moe/routing.h route_weights_bwd
// then ops/softmax.h softmax_bwd — on random routings with unused slots (−1), an expert every token skips, renorm on
// and off, with and without the objectives' drouter, fp32 and bf16 outputs, odd sizes. Outputs are poisoned first.
// Tolerance: the same fp32 operations per token in the same order, but the device may contract a·b + c into FMA:
// a few ulp of the largest term (tol_reduce); bf16 adds one rounding of the output (tol_reduce<bf16>).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <tuple>

#include "dense_test_util.h"
#include "moe/routing.h"
#include "ops/cuda/moe_rows.h"
#include "ops/softmax.h"

namespace wattmoe::cuda::test {
namespace {

template <class T>
void router_backward_case(int64_t N, int S, int E, bool renorm, bool with_drouter, uint64_t seed) {
  SCOPED_TRACE(fmt::format("{} N {} S {} E {} renorm {} drouter {}", tname<T>(), N, S, E, renorm, with_drouter));
  Rng rng(seed);
  // Probabilities of random logits; each token's used slots are distinct experts, never expert E−1, some −1.
  Vec logits = random_vec(rng, size_t(N * E), 2.0), probs(logits.size());
  ops::softmax_fwd<float>(logits.data(), probs.data(), N, E);
  Routing r;
  r.reset(N, S, E);
  for (int64_t t = 0; t < N; ++t) {
    const int used = 1 + int(rng.uniform() * S) % S;
    std::vector<int> pool;
    for (int e = 0; e + 1 < E; ++e) pool.push_back(e);
    for (int s = 0; s < used && !pool.empty(); ++s) {
      const size_t i = size_t(rng.uniform() * double(pool.size())) % pool.size();
      r.expert[size_t(t * S + s)] = pool[i];
      pool.erase(pool.begin() + int64_t(i));
    }
  }
  r.recount();
  Vec weights(size_t(N * S));
  route_weights<float>(r, probs.data(), renorm, weights.data());
  // Rows in (token, slot) order for the used slots; dweight per row.
  std::vector<int64_t> row_of(size_t(N * S), -1);
  int64_t R = 0;
  for (size_t i = 0; i < row_of.size(); ++i)
    if (r.expert[i] >= 0) row_of[i] = R++;
  const Vec dweight_rows = random_vec(rng, size_t(std::max<int64_t>(R, 1)));
  Vec dweight(size_t(N * S), 0.f);
  for (size_t i = 0; i < row_of.size(); ++i)
    if (row_of[i] >= 0) dweight[i] = dweight_rows[size_t(row_of[i])];
  const Vec drouter = with_drouter ? random_vec(rng, size_t(N * E), 0.1) : Vec(size_t(N * E), 0.f);

  Vec dprobs(size_t(N * E), 0.f), want = drouter;
  route_weights_bwd<float>(r, probs.data(), weights.data(), dweight.data(), renorm, dprobs.data());
  ops::softmax_bwd<float>(probs.data(), dprobs.data(), want.data(), N, E);

  DeviceBuffer<int32_t> d_ids(r.expert.size());
  d_ids.upload(r.expert, ctx().stream());
  DeviceBuffer<int64_t> d_row_of(row_of.size());
  d_row_of.upload(row_of, ctx().stream());
  DeviceBuffer<float> d_probs = to_dev<float>(probs), d_w = to_dev<float>(weights),
                      d_dw = to_dev<float>(dweight_rows), d_dr = to_dev<float>(drouter);
  DeviceBuffer<T> out = nan_dev<T>(size_t(N * E));
  router_backward<T>(ctx(), d_ids.data(), d_probs.data(), d_w.data(), d_row_of.data(), d_dw.data(),
                     with_drouter ? d_dr.data() : nullptr, renorm, N, S, E, out.data());
  expect_close("router_backward", from_dev<T>(out), round_to<T>(want), tol_reduce<T>() * (kBf16<T> ? 1.0 : 4.0));
}

TEST(MoeRowsCuda, RouterBackwardMatchesHostPath) {
  REQUIRE_GPU();
  uint64_t seed = 1;
  for (auto [N, S, E] : {std::tuple<int64_t, int, int>{1, 1, 2}, {7, 2, 8}, {129, 3, 5}, {300, 8, 8}, {65, 4, 61}})
    for (bool renorm : {false, true})
      for (bool dr : {false, true}) {
        router_backward_case<float>(N, S, E, renorm, dr, seed);
        router_backward_case<bf16>(N, S, E, renorm, dr, seed++);
      }
}

}  // namespace
}  // namespace wattmoe::cuda::test
