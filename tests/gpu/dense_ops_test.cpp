// The dense CUDA ops (ops/cuda/dense_ops.h) against the CPU reference ops (ops::*, fp32), in fp32 and bf16, on
// fresh random inputs from fixed seeds and odd sizes (rows 1, 7, 37, 130; dims 24, 40, 200, 264; GQA groups 1-3;
// Tq ≠ Tk with pos0 > 0; batches 1 and 3). Overwritten outputs are poisoned with NaN before the call; accumulated
// ones start from random values (dense_test_util.h: acc_init) and the reference accumulates into the same values.
// Tolerances: dense_test_util.h. Ops with no CPU op of their own (embedding, gated add, clamp, axpy, convert) are
// checked against plain loops here; AdamW against train/optimizer's AdamW itself, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <tuple>
#include <utility>
#include <numeric>
#include <string>
#include <vector>

#include "dense_test_util.h"
#include "core/error.h"
#include "model/config.h"
#include "model/params.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/cuda/dense_ops.h"
#include "ops/linear.h"
#include "ops/lora.h"
#include "ops/loss.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/softmax.h"
#include "model/optimizer.h"

namespace wattmoe::cuda::test {
namespace {

std::string tag(const char* op, const char* dt, std::initializer_list<int64_t> dims) {
  std::string s = std::string(op) + "<" + dt + ">";
  for (int64_t d : dims) s += " " + std::to_string(d);
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// gemm and linear

template <class T>
void gemm_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb, uint64_t seed) {
  Rng rng(seed);
  const int64_t pad = 3;  // leading dimensions wider than the rows
  const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  const int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
  Vec A = random_t<T>(rng, static_cast<size_t>(ar * lda)), B = random_t<T>(rng, static_cast<size_t>(br * ldb));
  Vec C0 = random_t<T>(rng, static_cast<size_t>(M * ldc));
  const float alpha = 0.75f, beta = 0.5f;
  Vec want = C0;
  ops::gemm<float>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, want.data(), ldc);
  auto dA = to_dev<T>(A), dB = to_dev<T>(B), dC = to_dev<T>(C0);
  gemm<T>(ctx(), ta, tb, M, N, K, alpha, dA.data(), lda, dB.data(), ldb, beta, dC.data(), ldc);
  expect_close(tag("gemm", tname<T>(), {M, N, K, ta, tb}), from_dev(dC), want, tol_reduce<T>());
}

template <class T>
void gemm_all() {
  REQUIRE_GPU();
  uint64_t seed = 1;
  for (auto [M, N, K] : std::initializer_list<std::tuple<int64_t, int64_t, int64_t>>{{1, 24, 7}, {37, 40, 200}, {130, 7, 264}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) gemm_case<T>(M, N, K, ta, tb, seed++);
}
TEST(DenseOpsCuda, GemmF32) { gemm_all<float>(); }
TEST(DenseOpsCuda, GemmBf16) { gemm_all<bf16>(); }

// gemm_grouped against the CPU gemm per group: groups of shared N, transposes and leading dimensions (padded off 8,
// and multiples of 8 for the 16-byte loads) with their own M and K, among them empty groups (M = 0), K = 0
// (C = beta·C), sizes off the 64 × 64 × 32 tile and off 8, more groups than one launch takes (64), beta = 0 over a
// NaN-poisoned C (never read), launches of few tiles and long K (split across CTAs), and groups large enough to go
// to one cuBLAS call each. Each case sets only the C of its groups: the rest of the buffer must keep its values.
template <class T>
void gemm_grouped_case(const std::vector<std::pair<int64_t, int64_t>>& mk, int64_t N, bool ta, bool tb, float beta,
                       uint64_t seed, int64_t pad = 3) {
  Rng rng(seed);
  int64_t max_m = 1, max_k = 1;
  for (auto [m, k] : mk) max_m = std::max(max_m, m), max_k = std::max(max_k, k);
  const int64_t lda = (ta ? max_m : max_k) + pad, ldb = (tb ? max_k : N) + pad, ldc = N + pad;
  std::vector<int64_t> a_at{0}, b_at{0}, c_at{0};  // each group's operands at its own offset of one buffer
  for (auto [m, k] : mk) {
    a_at.push_back(a_at.back() + (ta ? k : m) * lda);
    b_at.push_back(b_at.back() + (tb ? N : k) * ldb);
    c_at.push_back(c_at.back() + m * ldc + 5);  // 5 elements between groups' C that nothing may write
  }
  Vec A = random_t<T>(rng, size_t(a_at.back()) + 1), B = random_t<T>(rng, size_t(b_at.back()) + 1);
  Vec C0 = beta == 0.f ? Vec(size_t(c_at.back()) + 1, std::numeric_limits<float>::quiet_NaN())
                       : random_t<T>(rng, size_t(c_at.back()) + 1);
  Vec want = C0;
  const float alpha = 0.75f;
  for (size_t g = 0; g < mk.size(); ++g) {
    const auto [m, k] = mk[g];
    if (m == 0) continue;
    if (beta == 0.f)  // the CPU gemm reads C when K = 0; the device never does with beta = 0
      for (int64_t i = 0; i < m; ++i)
        std::fill_n(want.begin() + c_at[g] + i * ldc, N, 0.f);
    ops::gemm<float>(ta, tb, m, N, k, alpha, A.data() + a_at[g], lda, B.data() + b_at[g], ldb, beta,
                     want.data() + c_at[g], ldc);
  }
  auto dA = to_dev<T>(A), dB = to_dev<T>(B), dC = to_dev<T>(C0);
  std::vector<GemmGroup<T>> groups;
  for (size_t g = 0; g < mk.size(); ++g)
    groups.push_back({dA.data() + a_at[g], dB.data() + b_at[g], dC.data() + c_at[g], mk[g].first, mk[g].second});
  gemm_grouped<T>(ctx(), ta, tb, groups, N, alpha, lda, ldb, beta, ldc);
  Vec got = from_dev(dC);
  for (size_t i = 0; i < got.size(); ++i)  // the untouched gaps: NaN stays NaN; compare the rest
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "gemm_grouped wrote outside its groups at " << i;
      got[i] = want[i] = 0.f;
    }
  expect_close(tag("gemm_grouped", tname<T>(), {int64_t(mk.size()), N, ta, tb, int64_t(beta * 2)}), got, want,
               tol_reduce<T>());
}

template <class T>
void gemm_grouped_all() {
  REQUIRE_GPU();
  uint64_t seed = 300;
  const std::vector<std::pair<int64_t, int64_t>> mixed{{1, 24}, {0, 24}, {37, 7}, {64, 64}, {65, 33}, {130, 1},
                                                       {3, 0}, {200, 264}};
  const std::vector<std::pair<int64_t, int64_t>> k_varies{{24, 0}, {24, 1}, {24, 37}, {24, 0}, {24, 130}};
  std::vector<std::pair<int64_t, int64_t>> many;  // past one launch's 64 groups
  for (int g = 0; g < 70; ++g) many.push_back({g % 5 == 0 ? 0 : 1 + g % 9, 8 + g % 3});
  const std::vector<std::pair<int64_t, int64_t>> large{{512, 512}, {600, 512}};  // one cuBLAS call each
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 0.5f}) {
        gemm_grouped_case<T>(mixed, 65, ta, tb, beta, seed++);
        gemm_grouped_case<T>(k_varies, 8, ta, tb, beta, seed++);
        // Leading dimensions and group offsets that are multiples of 8 elements (the kernel's 16-byte loads), with
        // every size off the tile and off 8 (the runs that cross the edge load element by element).
        gemm_grouped_case<T>(mixed, 72, ta, tb, beta, seed++, 8);
        gemm_grouped_case<T>(mixed, 67, ta, tb, beta, seed++, 8);
      }
  // TTT's LoRA products on a medium layer (8 experts of ~18..40 rows, H 512, I 1024, rank 8): few tiles and long K,
  // so K is split across CTAs and the slices summed by a second kernel; and all rows but one on one expert.
  const std::vector<std::pair<int64_t, int64_t>> lora_t{{18, 1024}, {40, 1024}, {0, 1024}, {33, 1024}, {25, 1024}};
  const std::vector<std::pair<int64_t, int64_t>> lora_db{{1024, 18}, {1024, 40}, {1024, 33}};
  const std::vector<std::pair<int64_t, int64_t>> one_expert{{0, 512}, {256, 512}, {1, 512}};
  for (float beta : {0.f, 1.f}) {
    gemm_grouped_case<T>(lora_t, 8, false, true, beta, seed++, 8);
    gemm_grouped_case<T>(lora_t, 512, false, false, beta, seed++, 8);
    gemm_grouped_case<T>(lora_db, 8, true, false, beta, seed++, 8);
    gemm_grouped_case<T>(one_expert, 8, false, true, beta, seed++);
  }
  gemm_grouped_case<T>(many, 40, false, true, 1.f, seed++);
  gemm_grouped_case<T>(large, 512, false, true, 1.f, seed++);
  gemm_grouped_case<T>({{5, 3}}, 7, true, false, 0.f, seed++);  // one group: gemm itself
}
// lora_merge against the CPU lora_merge, rounded to bf16: odd shapes (columns off the 4 a thread owns, items whose
// outputs start off 8 bytes), rank 1, 8, 16 (the register paths) and 17 (any rank), more items than one launch takes
// (64), more rows than a CTA walks, and outputs poisoned with NaN (every element must be written).
TEST(DenseOpsCuda, LoraMerge) {
  REQUIRE_GPU();
  uint64_t seed = 900;
  for (auto [out, in, r, items] : std::initializer_list<std::tuple<int64_t, int64_t, int64_t, int>>{
           {37, 23, 3, 2}, {1, 1, 1, 1}, {256, 128, 8, 70}, {130, 264, 8, 5}, {33, 1030, 16, 3}, {20, 36, 17, 2},
           {5, 6, 9, 3}}) {
    Rng rng(seed++);
    const int64_t m = out * in;
    Vec W = random_vec(rng, size_t(m * items)), A = random_vec(rng, size_t(r * in * items));
    Vec B = random_vec(rng, size_t(out * r * items), 0.1);
    const float scale = 2.0f;
    Vec want(size_t(m * items));
    for (int i = 0; i < items; ++i)
      wattmoe::ops::lora_merge<float>(W.data() + i * m, A.data() + i * r * in, B.data() + i * out * r, scale, want.data() + i * m,
                        out, in, r);
    want = round_to<bf16>(want);
    auto dW = to_dev<float>(W), dA = to_dev<float>(A), dB = to_dev<float>(B);
    auto dM = nan_dev<bf16>(size_t(m * items));
    std::vector<LoraMergeItem> list;
    for (int i = 0; i < items; ++i)
      list.push_back({dW.data() + i * m, dA.data() + i * r * in, dB.data() + i * out * r, dM.data() + i * m});
    cuda::lora_merge(ctx(), list, out, in, r, scale);
    expect_close(tag("lora_merge", "bf16", {out, in, r, items}), from_dev(dM), want, tol_elem<bf16>());
  }
}

TEST(DenseOpsCuda, GemmGroupedF32) { gemm_grouped_all<float>(); }
TEST(DenseOpsCuda, GemmGroupedBf16) { gemm_grouped_all<bf16>(); }

template <class T>
void linear_case(int64_t M, int64_t in, int64_t out, bool bias, uint64_t seed) {
  Rng rng(seed);
  Vec x = random_t<T>(rng, static_cast<size_t>(M * in)), W = random_t<T>(rng, static_cast<size_t>(out * in), 1 / std::sqrt(double(in)));
  Vec b = random_t<T>(rng, static_cast<size_t>(out)), dy = random_t<T>(rng, static_cast<size_t>(M * out));
  // forward
  Vec y(static_cast<size_t>(M * out));
  ops::linear_fwd<float>(x.data(), W.data(), bias ? b.data() : nullptr, y.data(), M, in, out);
  auto dx_ = to_dev<T>(x), dW_ = to_dev<T>(W), db_ = to_dev<T>(b), ddy = to_dev<T>(dy);
  auto dyo = nan_dev<T>(static_cast<size_t>(M * out));
  linear_fwd<T>(ctx(), dx_.data(), dW_.data(), bias ? db_.data() : nullptr, dyo.data(), M, in, out);
  expect_close(tag("linear_fwd", tname<T>(), {M, in, out, bias}), from_dev(dyo), y, tol_reduce<T>());
  // backward: increments first (zero start), then random starting values, accumulated by both
  Vec gx(static_cast<size_t>(M * in), 0.f), gW(static_cast<size_t>(out * in), 0.f), gb(static_cast<size_t>(out), 0.f);
  ops::linear_bwd<float>(x.data(), W.data(), dy.data(), gx.data(), gW.data(), gb.data(), M, in, out);
  Vec gx0 = acc_init<T>(rng, gx), gW0 = acc_init<T>(rng, gW), gb0 = acc_init<T>(rng, gb);
  gx = gx0, gW = gW0, gb = gb0;
  ops::linear_bwd<float>(x.data(), W.data(), dy.data(), gx.data(), gW.data(), gb.data(), M, in, out);
  auto dgx = to_dev<T>(gx0), dgW = to_dev<T>(gW0), dgb = to_dev<T>(gb0);
  linear_bwd<T>(ctx(), dx_.data(), dW_.data(), ddy.data(), dgx.data(), dgW.data(), dgb.data(), M, in, out);
  expect_close(tag("linear_bwd.dx", tname<T>(), {M, in, out}), from_dev(dgx), gx, tol_reduce<T>());
  expect_close(tag("linear_bwd.dW", tname<T>(), {M, in, out}), from_dev(dgW), gW, tol_reduce<T>());
  expect_close(tag("linear_bwd.db", tname<T>(), {M, in, out}), from_dev(dgb), gb, tol_reduce<T>());
  // null outputs are skipped: only db
  auto dgb2 = to_dev<T>(gb0);
  linear_bwd<T>(ctx(), dx_.data(), dW_.data(), ddy.data(), nullptr, nullptr, dgb2.data(), M, in, out);
  expect_close(tag("linear_bwd.db_only", tname<T>(), {M, in, out}), from_dev(dgb2), gb, tol_reduce<T>());
}

template <class T>
void linear_all() {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (int64_t M : {1, 7, 37, 130})
    for (auto [in, out] : std::initializer_list<std::pair<int64_t, int64_t>>{{24, 40}, {200, 24}, {264, 200}})
      for (bool bias : {false, true}) linear_case<T>(M, in, out, bias, seed++);
  linear_case<T>(1000, 40, 24, true, seed++);  // db over many rows: several column-sum chunks
}
TEST(DenseOpsCuda, LinearF32) { linear_all<float>(); }
TEST(DenseOpsCuda, LinearBf16) { linear_all<bf16>(); }

// ---------------------------------------------------------------------------------------------------------------
// RMSNorm

template <class T>
void rmsnorm_case(int64_t rows, int64_t dim, uint64_t seed) {
  Rng rng(seed);
  const double eps = 1e-5;
  Vec x = random_t<T>(rng, static_cast<size_t>(rows * dim), 2.0), w = random_t<T>(rng, static_cast<size_t>(dim)),
      dy = random_t<T>(rng, static_cast<size_t>(rows * dim));
  for (float& v : w) v = round_to<T>(Vec{1.f + 0.3f * v})[0];
  Vec y(x.size()), r(static_cast<size_t>(rows));
  ops::rmsnorm_fwd<float>(x.data(), w.data(), y.data(), r.data(), rows, dim, eps);
  auto dx_ = to_dev<T>(x), dw_ = to_dev<T>(w), ddy = to_dev<T>(dy);
  auto dyo = nan_dev<T>(x.size());
  auto dr = nan_dev<float>(static_cast<size_t>(rows));
  rmsnorm_fwd<T>(ctx(), dx_.data(), dw_.data(), dyo.data(), dr.data(), rows, dim, eps);
  expect_close(tag("rmsnorm_fwd.y", tname<T>(), {rows, dim}), from_dev(dyo), y, tol_reduce<T>());
  expect_close(tag("rmsnorm_fwd.rstd", tname<T>(), {rows, dim}), from_dev(dr), r, 1e-5);
  // in place (y aliases x), no rstd
  auto dxi = to_dev<T>(x);
  rmsnorm_fwd<T>(ctx(), dxi.data(), dw_.data(), dxi.data(), nullptr, rows, dim, eps);
  expect_close(tag("rmsnorm_fwd.inplace", tname<T>(), {rows, dim}), from_dev(dxi), y, tol_reduce<T>());
  // backward from the reference's rstd (the same floats on both sides)
  Vec gx(x.size(), 0.f), gw(w.size(), 0.f);
  ops::rmsnorm_bwd<float>(x.data(), w.data(), r.data(), dy.data(), gx.data(), gw.data(), rows, dim);
  Vec gx0 = acc_init<T>(rng, gx), gw0 = acc_init<T>(rng, gw);
  gx = gx0, gw = gw0;
  ops::rmsnorm_bwd<float>(x.data(), w.data(), r.data(), dy.data(), gx.data(), gw.data(), rows, dim);
  auto drr = to_dev<float>(r), dgx = to_dev<T>(gx0), dgw = to_dev<T>(gw0);
  rmsnorm_bwd<T>(ctx(), dx_.data(), dw_.data(), drr.data(), ddy.data(), dgx.data(), dgw.data(), rows, dim);
  expect_close(tag("rmsnorm_bwd.dx", tname<T>(), {rows, dim}), from_dev(dgx), gx, tol_reduce<T>());
  expect_close(tag("rmsnorm_bwd.dw", tname<T>(), {rows, dim}), from_dev(dgw), gw, tol_reduce<T>());
  auto dgw2 = to_dev<T>(gw0);  // the column sum is deterministic: a second run gives the same bits
  rmsnorm_bwd<T>(ctx(), dx_.data(), dw_.data(), drr.data(), ddy.data(), nullptr, dgw2.data(), rows, dim);
  EXPECT_EQ(from_dev(dgw2), from_dev(dgw)) << "rmsnorm_bwd.dw run to run";
}

template <class T>
void rmsnorm_all() {
  REQUIRE_GPU();
  uint64_t seed = 200;
  for (int64_t rows : {1, 7, 37, 130, 1000})
    for (int64_t dim : {24, 40, 200, 264}) rmsnorm_case<T>(rows, dim, seed++);
}
TEST(DenseOpsCuda, RmsNormF32) { rmsnorm_all<float>(); }
TEST(DenseOpsCuda, RmsNormBf16) { rmsnorm_all<bf16>(); }

// ---------------------------------------------------------------------------------------------------------------
// RoPE: fp32 must match the CPU bit for bit (same float table, same rounded operations).

template <class T>
void rope_case(int64_t B, int64_t S, int64_t nh, int64_t hd, int64_t extra, int64_t pos0, uint64_t seed) {
  Rng rng(seed);
  const int64_t stride = nh * hd + extra;
  const ops::RopeTable tab = ops::rope_table(2, pos0 + S + 5, hd, 10000.0);  // table starts at position 2
  DeviceRope dtab;
  dtab.upload(ctx(), tab);
  for (bool inverse : {false, true}) {
    Vec x = random_t<T>(rng, static_cast<size_t>(B * S * stride));
    Vec want = x;
    for (int64_t b = 0; b < B; ++b)
      ops::rope_apply<float>(want.data() + b * S * stride, S, nh, hd, stride, tab, pos0, inverse);
    auto dx = to_dev<T>(x);
    rope_apply<T>(ctx(), dx.data(), B, S, nh, hd, stride, dtab, pos0, inverse);
    expect_close(tag(inverse ? "rope_inv" : "rope", tname<T>(), {B, S, nh, hd, stride, pos0}), from_dev(dx), want,
                 kBf16<T> ? tol_elem<T>() : 0.0);
  }
}

template <class T>
void rope_all() {
  REQUIRE_GPU();
  uint64_t seed = 300;
  for (int64_t B : {1, 3})
    for (int64_t S : {1, 7, 37})
      for (auto [nh, hd, extra] : std::initializer_list<std::tuple<int64_t, int64_t, int64_t>>{{1, 24, 0}, {3, 40, 8}, {4, 64, 0}})
        rope_case<T>(B, S, nh, hd, extra, S == 1 ? 9 : 2 + 3 * int64_t(B), seed++);
}
TEST(DenseOpsCuda, RopeF32) { rope_all<float>(); }
TEST(DenseOpsCuda, RopeBf16) { rope_all<bf16>(); }

// ---------------------------------------------------------------------------------------------------------------
// SwiGLU and softmax

template <class T>
void swiglu_all() {
  REQUIRE_GPU();
  uint64_t seed = 400;
  for (int64_t n : {1, 7, 37 * 40, 130 * 264}) {
    Rng rng(seed++);
    Vec g = random_t<T>(rng, static_cast<size_t>(n), 3.0), u = random_t<T>(rng, static_cast<size_t>(n)), dh = random_t<T>(rng, static_cast<size_t>(n));
    Vec h(static_cast<size_t>(n));
    ops::swiglu_fwd<float>(g.data(), u.data(), h.data(), n);
    auto dg_ = to_dev<T>(g), du_ = to_dev<T>(u), ddh = to_dev<T>(dh), dho = nan_dev<T>(static_cast<size_t>(n));
    swiglu_fwd<T>(ctx(), dg_.data(), du_.data(), dho.data(), n);
    expect_close(tag("swiglu_fwd", tname<T>(), {n}), from_dev(dho), h, tol_elem<T>());
    Vec gg(static_cast<size_t>(n), 0.f), gu(static_cast<size_t>(n), 0.f);
    ops::swiglu_bwd<float>(g.data(), u.data(), dh.data(), gg.data(), gu.data(), n);
    Vec gg0 = acc_init<T>(rng, gg), gu0 = acc_init<T>(rng, gu);
    gg = gg0, gu = gu0;
    ops::swiglu_bwd<float>(g.data(), u.data(), dh.data(), gg.data(), gu.data(), n);
    auto dgg = to_dev<T>(gg0), dgu = to_dev<T>(gu0);
    swiglu_bwd<T>(ctx(), dg_.data(), du_.data(), ddh.data(), dgg.data(), dgu.data(), n);
    expect_close(tag("swiglu_bwd.dg", tname<T>(), {n}), from_dev(dgg), gg, tol_elem<T>());
    expect_close(tag("swiglu_bwd.du", tname<T>(), {n}), from_dev(dgu), gu, tol_elem<T>());
    auto dgu2 = to_dev<T>(gu0);  // dg null
    swiglu_bwd<T>(ctx(), dg_.data(), du_.data(), ddh.data(), nullptr, dgu2.data(), n);
    expect_close(tag("swiglu_bwd.du_only", tname<T>(), {n}), from_dev(dgu2), gu, tol_elem<T>());
  }
}
TEST(DenseOpsCuda, SwigluF32) { swiglu_all<float>(); }
TEST(DenseOpsCuda, SwigluBf16) { swiglu_all<bf16>(); }

template <class T>
void softmax_all() {
  REQUIRE_GPU();
  uint64_t seed = 500;
  for (int64_t rows : {1, 7, 130})
    for (int64_t n : {1, 24, 264, 5003}) {
      Rng rng(seed++);
      Vec x = random_t<T>(rng, static_cast<size_t>(rows * n), 3.0), dy = random_t<T>(rng, static_cast<size_t>(rows * n));
      Vec y(x.size());
      ops::softmax_fwd<float>(x.data(), y.data(), rows, n);
      auto dx_ = to_dev<T>(x), dyo = nan_dev<T>(x.size());
      softmax_fwd<T>(ctx(), dx_.data(), dyo.data(), rows, n);
      expect_close(tag("softmax_fwd", tname<T>(), {rows, n}), from_dev(dyo), y, tol_reduce<T>());
      softmax_fwd<T>(ctx(), dx_.data(), dx_.data(), rows, n);  // in place
      expect_close(tag("softmax_fwd.inplace", tname<T>(), {rows, n}), from_dev(dx_), y, tol_reduce<T>());
      // backward from the (rounded) reference probabilities
      Vec yr = round_to<T>(y), g(x.size(), 0.f);
      ops::softmax_bwd<float>(yr.data(), dy.data(), g.data(), rows, n);
      Vec g0 = acc_init<T>(rng, g);
      g = g0;
      ops::softmax_bwd<float>(yr.data(), dy.data(), g.data(), rows, n);
      auto dyr = to_dev<T>(yr), ddy = to_dev<T>(dy), dg = to_dev<T>(g0);
      softmax_bwd<T>(ctx(), dyr.data(), ddy.data(), dg.data(), rows, n);
      expect_close(tag("softmax_bwd", tname<T>(), {rows, n}), from_dev(dg), g, tol_reduce<T>());
    }
}
TEST(DenseOpsCuda, SoftmaxF32) { softmax_all<float>(); }
TEST(DenseOpsCuda, SoftmaxBf16) { softmax_all<bf16>(); }

// ---------------------------------------------------------------------------------------------------------------
// Attention: batch sequences on the GPU in one call, the CPU op per sequence. The CPU writes out and reads dout
// with row stride q_stride; the GPU's are dense [Tq, n_heads·hd].

int flash_cases_run = 0;  // attention_case's bf16 checks of attention_fwd_flash

struct AttnCase {
  int64_t Tq, Tk, pos0, nh, nkv, hd, q_extra, kv_extra, batch;
};

template <class T>
void attention_case(const AttnCase& c, uint64_t seed) {
  Rng rng(seed);
  const ops::AttnShape s{c.Tq, c.Tk, c.pos0, c.nh, c.nkv, c.hd, c.nh * c.hd + c.q_extra, c.nkv * c.hd + c.kv_extra};
  const int64_t B = c.batch, nhd = c.nh * c.hd, PP = c.Tq * c.Tk;
  const std::string name = tag("attention", tname<T>(), {c.Tq, c.Tk, c.pos0, c.nh, c.nkv, c.hd, s.q_stride,
                                                         s.kv_stride, B});
  Vec q = random_t<T>(rng, static_cast<size_t>(B * c.Tq * s.q_stride), 1.5), k = random_t<T>(rng, static_cast<size_t>(B * c.Tk * s.kv_stride), 1.5),
      v = random_t<T>(rng, static_cast<size_t>(B * c.Tk * s.kv_stride)), dout = random_t<T>(rng, static_cast<size_t>(B * c.Tq * nhd));
  // CPU forward and backward per sequence (increments from zero, then from random starting values)
  Vec out(static_cast<size_t>(B * c.Tq * nhd)), probs(static_cast<size_t>(B * c.nh * PP));
  Vec gq(q.size(), 0.f), gk(k.size(), 0.f), gv(v.size(), 0.f);
  auto cpu_bwd = [&](Vec& dq, Vec& dk, Vec& dv) {
    for (int64_t b = 0; b < B; ++b) {
      Vec dob(static_cast<size_t>(c.Tq * s.q_stride), 0.f);
      for (int64_t t = 0; t < c.Tq; ++t)
        std::copy_n(dout.begin() + (b * c.Tq + t) * nhd, nhd, dob.begin() + t * s.q_stride);
      ops::attention_bwd<float>(q.data() + b * c.Tq * s.q_stride, k.data() + b * c.Tk * s.kv_stride,
                                v.data() + b * c.Tk * s.kv_stride, probs.data() + b * c.nh * PP, dob.data(),
                                dq.data() + b * c.Tq * s.q_stride, dk.data() + b * c.Tk * s.kv_stride,
                                dv.data() + b * c.Tk * s.kv_stride, s);
    }
  };
  for (int64_t b = 0; b < B; ++b) {
    Vec ob(static_cast<size_t>(c.Tq * s.q_stride), 0.f);
    ops::attention_fwd<float>(q.data() + b * c.Tq * s.q_stride, k.data() + b * c.Tk * s.kv_stride,
                              v.data() + b * c.Tk * s.kv_stride, ob.data(), probs.data() + b * c.nh * PP, s);
    for (int64_t t = 0; t < c.Tq; ++t)
      std::copy_n(ob.begin() + t * s.q_stride, nhd, out.begin() + (b * c.Tq + t) * nhd);
  }
  cpu_bwd(gq, gk, gv);
  Vec gq0 = acc_init<T>(rng, gq), gk0 = acc_init<T>(rng, gk), gv0 = acc_init<T>(rng, gv);
  gq = gq0, gk = gk0, gv = gv0;
  cpu_bwd(gq, gk, gv);

  auto dq_ = to_dev<T>(q), dk_ = to_dev<T>(k), dv_ = to_dev<T>(v), ddo = to_dev<T>(dout);
  auto dout_ = nan_dev<T>(out.size());
  auto dprobs = nan_dev<float>(probs.size());
  attention_fwd<T>(ctx(), dq_.data(), dk_.data(), dv_.data(), dout_.data(), dprobs.data(), s, B);
  expect_close(name + " out", from_dev(dout_), out, tol_chain<T>());
  expect_close(name + " probs", from_dev(dprobs), probs, 2e-5);
  auto dout2 = nan_dev<T>(out.size());  // inference: no probs
  attention_fwd<T>(ctx(), dq_.data(), dk_.data(), dv_.data(), dout2.data(), nullptr, s, B);
  expect_close(name + " out(no probs)", from_dev(dout2), out, tol_chain<T>());
  if constexpr (kBf16<T>) {  // the flash forward where the shape allows it
    if (flash_attention_supported(s)) {
      auto dout3 = nan_dev<T>(out.size());
      attention_fwd_flash(ctx(), dq_.data(), dk_.data(), dv_.data(), dout3.data(), s, B);
      expect_close(name + " out(flash)", from_dev(dout3), out, tol_chain<T>());
      ++flash_cases_run;
    }
  }

  auto dgq = to_dev<T>(gq0), dgk = to_dev<T>(gk0), dgv = to_dev<T>(gv0);
  attention_bwd<T>(ctx(), dq_.data(), dk_.data(), dv_.data(), dprobs.data(), ddo.data(), dgq.data(), dgk.data(),
                   dgv.data(), s, B);
  expect_close(name + " dq", from_dev(dgq), gq, tol_chain<T>());
  expect_close(name + " dk", from_dev(dgk), gk, tol_chain<T>());
  expect_close(name + " dv", from_dev(dgv), gv, tol_chain<T>());
  auto dgk2 = to_dev<T>(gk0);  // dq and dv null
  attention_bwd<T>(ctx(), dq_.data(), dk_.data(), dv_.data(), dprobs.data(), ddo.data(), nullptr, dgk2.data(),
                   nullptr, s, B);
  expect_close(name + " dk only", from_dev(dgk2), gk, tol_chain<T>());
}

template <class T>
void attention_all() {
  REQUIRE_GPU();
  const AttnCase cases[] = {
      {7, 7, 0, 1, 1, 24, 0, 0, 1},       // one head
      {37, 37, 0, 4, 2, 40, 8, 0, 3},     // GQA group 2, padded q rows, batch 3
      {5, 12, 7, 4, 4, 24, 0, 16, 3},     // Tq < Tk (KV cache), pos0 > 0, padded kv rows
      {13, 40, 20, 2, 1, 64, 0, 0, 1},    // Tk > pos0 + Tq: trailing keys masked for every query
      {130, 130, 0, 3, 1, 40, 0, 0, 1},   // group 3
      {1, 37, 36, 4, 2, 24, 8, 8, 3},     // decode step
      {200, 264, 64, 4, 2, 64, 0, 0, 1},  // longer rows, pos0 > 0
      {67, 67, 0, 6, 2, 40, 8, 8, 5},     // batch 5, GQA group 3, padded q and kv rows
      {33, 45, 12, 4, 1, 24, 0, 8, 4},    // batch 4, group 4 (one KV head), pos0 > 0, trailing keys masked
  };
  uint64_t seed = 600;
  for (const AttnCase& c : cases) attention_case<T>(c, seed++);
}
TEST(DenseOpsCuda, AttentionF32) { attention_all<float>(); }
TEST(DenseOpsCuda, AttentionBf16) { attention_all<bf16>(); }

// The flash forward's own cases (bf16): tile edges (64 queries and keys a tile), hd 16 to 128, GQA, pos0 > 0 with
// trailing masked keys, long decode rows, padded strides, batches; each also runs the materialised path above.
TEST(DenseOpsCuda, AttentionFlashBf16) {
  REQUIRE_GPU();
  const AttnCase cases[] = {
      {1, 1, 0, 1, 1, 16, 0, 0, 1},        // one query, one key
      {64, 64, 0, 4, 2, 64, 0, 0, 2},      // exactly one tile
      {65, 65, 0, 4, 4, 32, 8, 0, 1},      // one row past the tile, padded q rows
      {77, 300, 200, 8, 2, 128, 16, 8, 2}, // KV cache: pos0 > 0, trailing keys masked, hd 128, group 4
      {1, 513, 512, 4, 1, 64, 0, 0, 3},    // a decode row over 513 keys, one KV head
      {200, 200, 0, 2, 2, 96, 8, 8, 1},    // hd 96, padded q and kv rows
      {130, 130, 0, 3, 1, 48, 0, 0, 2},    // hd 48, group 3
      {128, 192, 64, 2, 1, 80, 0, 0, 1},   // hd 80, two query tiles, pos0 a tile
  };
  const int before = flash_cases_run;
  uint64_t seed = 700;
  for (const AttnCase& c : cases) attention_case<bf16>(c, seed++);
  EXPECT_EQ(flash_cases_run - before, int(std::size(cases))) << "a case the flash forward should take was refused";
  const ops::AttnShape odd{8, 8, 0, 2, 2, 24, 48, 48};  // hd 24: not a multiple of 16
  EXPECT_FALSE(flash_attention_supported(odd));
  DeviceBuffer<bf16> buf(4096);
  EXPECT_THROW(attention_fwd_flash(ctx(), buf.data(), buf.data(), buf.data(), buf.data(), odd, 1), Error);
}

// ---------------------------------------------------------------------------------------------------------------
// Losses

template <class T>
void loss_all() {
  REQUIRE_GPU();
  uint64_t seed = 700;
  for (int64_t rows : {1, 7, 37, 130})
    for (int64_t V : {24, 200, 1000, 5003}) {
      Rng rng(seed++);
      Vec x = random_t<T>(rng, static_cast<size_t>(rows * V), 3.0);
      std::vector<int32_t> tg(static_cast<size_t>(rows));
      for (auto& t : tg) t = rng.uniform() < 0.2 ? -1 : int32_t(rng.below(uint64_t(V)));
      tg[0] = int32_t(V - 1);  // at least one scored row, the last class
      const double scale = 0.37;
      const std::string nm = tag("", tname<T>(), {rows, V});
      auto dx = to_dev<T>(x);
      DeviceBuffer<int32_t> dt;
      dt.upload(tg, ctx().stream());
      {
        Vec g(x.size());
        const double want = ops::nll_loss<float>(x.data(), tg.data(), rows, V, g.data(), scale);
        auto dg = nan_dev<T>(x.size());
        const double got = nll_loss<T>(ctx(), dx.data(), dt.data(), rows, V, dg.data(), scale);
        EXPECT_NEAR(got, want, 1e-5 * std::max(1.0, std::fabs(want))) << "nll" << nm;
        expect_close("nll.grad" + nm, from_dev(dg), g, tol_elem<T>());
        EXPECT_NEAR(nll_loss<T>(ctx(), dx.data(), dt.data(), rows, V, nullptr, scale), want,
                    1e-5 * std::max(1.0, std::fabs(want)))
            << "nll (no grad)" << nm;
      }
      {
        Vec g(x.size());
        const double want = ops::entropy_loss<float>(x.data(), rows, V, g.data(), scale);
        auto dg = nan_dev<T>(x.size());
        const double got = entropy_loss<T>(ctx(), dx.data(), rows, V, dg.data(), scale);
        EXPECT_NEAR(got, want, 1e-5 * std::max(1.0, std::fabs(want))) << "entropy" << nm;
        expect_close("entropy.grad" + nm, from_dev(dg), g, kBf16<T> ? tol_elem<T>() : 1e-5);
      }
    }
}
TEST(DenseOpsCuda, LossF32) { loss_all<float>(); }
TEST(DenseOpsCuda, LossBf16) { loss_all<bf16>(); }

// ---------------------------------------------------------------------------------------------------------------
// Embedding, gated add, clamp, axpy, convert (plain loops as the reference)

template <class T>
void embedding_all() {
  REQUIRE_GPU();
  uint64_t seed = 800;
  const int64_t vocab = 50;
  for (int64_t n : {1, 7, 130, 3000})
    for (int64_t H : {24, 264}) {
      Rng rng(seed++);
      Vec table = random_t<T>(rng, static_cast<size_t>(vocab * H)), dout = random_t<T>(rng, static_cast<size_t>(n * H));
      std::vector<int32_t> ids(static_cast<size_t>(n));
      for (auto& i : ids) i = int32_t(rng.below(n < 10 ? vocab : 7));  // many repeats when n is large
      DeviceBuffer<int32_t> dids;
      dids.upload(ids, ctx().stream());
      Vec out(static_cast<size_t>(n * H));
      for (int64_t i = 0; i < n; ++i) std::copy_n(table.begin() + ids[i] * H, H, out.begin() + i * H);
      auto dtab = to_dev<T>(table), dou = nan_dev<T>(out.size());
      embedding_fwd<T>(ctx(), dtab.data(), dids.data(), dou.data(), n, H);
      expect_close(tag("embedding_fwd", tname<T>(), {n, H}), from_dev(dou), out, 0.0);
      Vec inc(table.size(), 0.f);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < H; ++j) inc[ids[i] * H + j] += dout[i * H + j];
      Vec g0 = acc_init<T>(rng, inc), want = g0;
      for (size_t i = 0; i < want.size(); ++i) want[i] += inc[i];
      auto dg = to_dev<T>(g0), ddo = to_dev<T>(dout);
      embedding_bwd<T>(ctx(), dids.data(), ddo.data(), dg.data(), n, H);
      expect_close(tag("embedding_bwd", tname<T>(), {n, H}), from_dev(dg), want, tol_reduce<T>());
      // deterministic: a second run gives the same bits
      auto dg2 = to_dev<T>(g0);
      embedding_bwd<T>(ctx(), dids.data(), ddo.data(), dg2.data(), n, H);
      EXPECT_EQ(from_dev(dg2), from_dev(dg)) << "embedding_bwd run to run";
    }
}
TEST(DenseOpsCuda, EmbeddingF32) { embedding_all<float>(); }
TEST(DenseOpsCuda, EmbeddingBf16) { embedding_all<bf16>(); }

// Skewed ids (one id takes ~90% of the tokens: its run spans hundreds of backward chunks, as a space does in
// byte-level text), odd n and H, ids 0 and vocab − 1 present; against a loop, and bitwise run to run.
template <class T>
void embedding_skewed() {
  REQUIRE_GPU();
  Rng rng(890);
  const int64_t vocab = 9, n = 9001, H = 37;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& i : ids) i = rng.uniform() < 0.9 ? 4 : int32_t(rng.below(uint64_t(vocab)));
  ids[0] = 0, ids[static_cast<size_t>(n - 1)] = int32_t(vocab - 1);
  DeviceBuffer<int32_t> dids;
  dids.upload(ids, ctx().stream());
  Vec dout = random_t<T>(rng, static_cast<size_t>(n * H)), inc(static_cast<size_t>(vocab * H));
  std::vector<double> sum(inc.size(), 0.0);  // the reference sums in double: ~8000-term sums
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < H; ++j) sum[static_cast<size_t>(ids[i] * H + j)] += dout[static_cast<size_t>(i * H + j)];
  for (size_t i = 0; i < inc.size(); ++i) inc[i] = float(sum[i]);
  Vec g0 = acc_init<T>(rng, inc), want = g0;
  for (size_t i = 0; i < want.size(); ++i) want[i] = float(double(g0[i]) + sum[i]);
  auto dg = to_dev<T>(g0), dg2 = to_dev<T>(g0), ddo = to_dev<T>(dout);
  embedding_bwd<T>(ctx(), dids.data(), ddo.data(), dg.data(), n, H);
  expect_close(tag("embedding_bwd skewed", tname<T>(), {n, H}), from_dev(dg), want, tol_reduce<T>());
  embedding_bwd<T>(ctx(), dids.data(), ddo.data(), dg2.data(), n, H);
  EXPECT_EQ(from_dev(dg2), from_dev(dg)) << "embedding_bwd skewed run to run";
}
TEST(DenseOpsCuda, EmbeddingSkewedF32) { embedding_skewed<float>(); }
TEST(DenseOpsCuda, EmbeddingSkewedBf16) { embedding_skewed<bf16>(); }

template <class T>
void elementwise_all() {
  REQUIRE_GPU();
  uint64_t seed = 900;
  for (auto [rows, H] : std::initializer_list<std::pair<int64_t, int64_t>>{{1, 24}, {7, 40}, {37, 264}, {130, 200}}) {
    Rng rng(seed++);
    const int64_t n = rows * H;
    Vec gate = random_t<T>(rng, static_cast<size_t>(rows), 2.0), y = random_t<T>(rng, static_cast<size_t>(n)), dout = random_t<T>(rng, static_cast<size_t>(n));
    Vec out0 = random_t<T>(rng, static_cast<size_t>(n));
    // gated add
    Vec out = out0, dy(static_cast<size_t>(n), 0.f), dgate(static_cast<size_t>(rows), 0.f);
    for (int64_t t = 0; t < rows; ++t) {
      const double s = 1 / (1 + std::exp(-double(gate[t])));
      double dot = 0;
      for (int64_t j = 0; j < H; ++j) {
        out[t * H + j] = float(out[t * H + j] + s * y[t * H + j]);
        dy[t * H + j] = float(s * dout[t * H + j]);
        dot += double(dout[t * H + j]) * y[t * H + j];
      }
      dgate[t] = float(s * (1 - s) * dot);
    }
    Vec dy0 = acc_init<T>(rng, dy), dgate0 = acc_init<T>(rng, dgate);
    for (int64_t i = 0; i < n; ++i) dy[i] += dy0[i];
    for (int64_t t = 0; t < rows; ++t) dgate[t] += dgate0[t];
    auto dga = to_dev<T>(gate), dyy = to_dev<T>(y), ddo = to_dev<T>(dout), dout_ = to_dev<T>(out0);
    gated_add_fwd<T>(ctx(), dga.data(), dyy.data(), dout_.data(), rows, H);
    expect_close(tag("gated_add_fwd", tname<T>(), {rows, H}), from_dev(dout_), out, tol_elem<T>());
    auto ddy = to_dev<T>(dy0), ddg = to_dev<T>(dgate0);
    gated_add_bwd<T>(ctx(), dga.data(), dyy.data(), ddo.data(), ddy.data(), ddg.data(), rows, H);
    expect_close(tag("gated_add_bwd.dy", tname<T>(), {rows, H}), from_dev(ddy), dy, tol_elem<T>());
    expect_close(tag("gated_add_bwd.dgate", tname<T>(), {rows, H}), from_dev(ddg), dgate, tol_reduce<T>());
    auto ddg2 = to_dev<T>(dgate0);
    gated_add_bwd<T>(ctx(), dga.data(), dyy.data(), ddo.data(), nullptr, ddg2.data(), rows, H);
    expect_close(tag("gated_add_bwd.dgate_only", tname<T>(), {rows, H}), from_dev(ddg2), dgate, tol_reduce<T>());
    // axpy
    Vec ax = out0;
    for (int64_t i = 0; i < n; ++i) ax[i] += -0.625f * y[i];
    auto dax = to_dev<T>(out0);
    axpy<T>(ctx(), -0.625f, dyy.data(), dax.data(), n);
    expect_close(tag("axpy", tname<T>(), {n}), from_dev(dax), ax, tol_elem<T>());
    // clamp forward (keeping the pre-clamp copy) and backward
    const float lim = 0.8f;
    Vec cl = y, gcl = dout;
    for (int64_t i = 0; i < n; ++i) {
      cl[i] = std::clamp(y[i], -lim, lim);
      if (std::fabs(y[i]) > lim) gcl[i] = 0;
    }
    auto dcl = to_dev<T>(y), dpre = nan_dev<T>(static_cast<size_t>(n));
    clamp_fwd<T>(ctx(), dcl.data(), dpre.data(), lim, n);
    expect_close(tag("clamp_fwd", tname<T>(), {n}), from_dev(dcl), round_to<T>(cl), 0.0);
    expect_close(tag("clamp_fwd.pre", tname<T>(), {n}), from_dev(dpre), y, 0.0);
    auto dgc = to_dev<T>(dout);
    clamp_bwd<T>(ctx(), dpre.data(), lim, dgc.data(), n);
    expect_close(tag("clamp_bwd", tname<T>(), {n}), from_dev(dgc), gcl, 0.0);
  }
}
TEST(DenseOpsCuda, ElementwiseF32) { elementwise_all<float>(); }
TEST(DenseOpsCuda, ElementwiseBf16) { elementwise_all<bf16>(); }

TEST(DenseOpsCuda, Convert) {
  REQUIRE_GPU();
  Rng rng(1000);
  const int64_t n = 1237;
  Vec x = random_vec(rng, static_cast<size_t>(n), 10.0);
  x[0] = 0.f, x[1] = -0.f, x[2] = 1e-40f, x[3] = 3.0e38f, x[4] = INFINITY, x[5] = -INFINITY;
  auto df = to_dev<float>(x);
  DeviceBuffer<bf16> db(static_cast<size_t>(n));
  convert<bf16, float>(ctx(), df.data(), db.data(), n);
  std::vector<bf16> hb = db.download(ctx().stream());
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, &hb[static_cast<size_t>(i)], 2);
    bad += b != f32_to_bf16(x[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(bad, 0) << "float -> bf16 differs from core/dtype's round-to-nearest-even";
  auto dback = nan_dev<float>(static_cast<size_t>(n));
  convert<float, bf16>(ctx(), db.data(), dback.data(), n);
  Vec xr = round_to<bf16>(x), back = from_dev(dback);
  EXPECT_EQ(0, std::memcmp(back.data(), xr.data(), static_cast<size_t>(n) * 4)) << "bf16 -> float is exact";
  auto dcopy = nan_dev<float>(static_cast<size_t>(n));
  convert<float, float>(ctx(), df.data(), dcopy.data(), n);
  Vec copy = from_dev(dcopy);
  EXPECT_EQ(0, std::memcmp(copy.data(), x.data(), static_cast<size_t>(n) * 4));
  auto db2 = nan_dev<bf16>(static_cast<size_t>(n));
  convert<bf16, bf16>(ctx(), db.data(), db2.data(), n);
  EXPECT_EQ(from_dev(db2), xr);
}

// convert_runs against the element-wise conversion done on the host, bit for bit: 150 runs (more than one launch
// takes), empty runs, one run longer than a CTA's chunk, destinations in the reverse order of the sources with gaps
// between them (poisoned with NaN: they must stay untouched), plain and accumulating.
template <class Dst, class Src>
void convert_runs_case(bool accumulate, uint64_t seed) {
  Rng rng(seed);
  std::vector<ConvertRun> runs;
  int64_t src_n = 0;
  for (int i = 0; i < 150; ++i) {
    const int64_t n = i % 7 == 3 ? 0 : i == 40 ? 9001 : int64_t(rng.uniform() * 300);
    runs.push_back({src_n, 0, n});
    src_n += n + 5;  // gaps in the source too
  }
  int64_t dst_n = 0;
  for (auto r = runs.rbegin(); r != runs.rend(); ++r) r->dst = dst_n, dst_n += r->n + 3;
  const Vec src = round_to<Src>(random_vec(rng, size_t(src_n), 10.0));
  Vec dst0(size_t(dst_n), std::numeric_limits<float>::quiet_NaN());
  for (const ConvertRun& r : runs)  // accumulate: a random start inside the runs, NaN in the gaps
    for (int64_t i = 0; i < r.n && accumulate; ++i) dst0[size_t(r.dst + i)] = round_to<Dst>({float(rng.normal())})[0];
  Vec want = dst0;
  for (const ConvertRun& r : runs)
    for (int64_t i = 0; i < r.n; ++i) {
      float& d = want[size_t(r.dst + i)];
      d = round_to<Dst>({accumulate ? d + src[size_t(r.src + i)] : src[size_t(r.src + i)]})[0];
    }
  auto dsrc = to_dev<Src>(src);
  auto ddst = to_dev<Dst>(dst0);
  convert_runs<Dst, Src>(ctx(), dsrc.data(), ddst.data(), runs, accumulate);
  const Vec got = from_dev(ddst);
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i)
    bad += std::memcmp(&got[i], &want[i], 4) != 0 && !(std::isnan(got[i]) && std::isnan(want[i]));
  EXPECT_EQ(bad, 0) << "convert_runs " << tname<Dst>() << " <- " << tname<Src>() << (accumulate ? " accumulating" : "")
                    << ": elements differing from the host conversion (gaps must stay NaN)";
}
TEST(DenseOpsCuda, ConvertRuns) {
  REQUIRE_GPU();
  convert_runs_case<bf16, float>(false, 1100);  // a bf16 model's weights from its fp32 parameters
  convert_runs_case<float, bf16>(true, 1101);   // master gradients += widened bf16 gradients
  convert_runs_case<float, bf16>(false, 1102);
  convert_runs_case<float, float>(false, 1103);
  convert_runs_case<float, float>(true, 1104);
}

// ---------------------------------------------------------------------------------------------------------------
// Optimiser: the GPU AdamW against train/optimizer's AdamW (bitwise), sum_squares and scale.

ModelConfig tiny_config() {
  ModelConfig c;
  c.arch = Arch::Mixtral;
  c.vocab_size = 29, c.hidden_size = 16, c.num_layers = 2;
  c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 6;
  c.intermediate_size = c.moe_intermediate_size = 8;
  c.num_experts = 4, c.top_k = 2, c.norm_topk_prob = true;
  c.rms_norm_eps = 1e-5, c.rope_theta = 1e4, c.max_position_embeddings = 128;
  return c;
}

TEST(DenseOpsCuda, AdamW) {
  REQUIRE_GPU();
  const ParamLayout L = ParamLayout::build(tiny_config());
  const int64_t n = L.total();
  std::vector<uint8_t> decay(static_cast<size_t>(n), 0), train(static_cast<size_t>(n));
  for (const ParamSpec& s : L.specs())
    if (s.is_matrix()) std::fill(decay.begin() + s.offset, decay.begin() + s.offset + s.numel, 1);
  Rng rng(1100);
  for (auto& t : train) t = rng.uniform() < 0.7;
  for (bool masked : {false, true}) {
    AdamWConfig cfg;
    cfg.lr = 3e-3, cfg.beta1 = 0.9, cfg.beta2 = 0.95, cfg.eps = 1e-8, cfg.weight_decay = 0.1;
    AdamW opt(L, cfg);
    if (masked) opt.set_trainable(train);
    Vec p = random_vec(rng, static_cast<size_t>(n));
    DeviceBuffer<float> dp = to_dev<float>(p), dm = to_dev<float>(Vec(static_cast<size_t>(n), 0.f)),
                        dv = to_dev<float>(Vec(static_cast<size_t>(n), 0.f));
    DeviceBuffer<uint8_t> ddec, dtr;
    ddec.upload(decay, ctx().stream());
    dtr.upload(train, ctx().stream());
    for (int step = 1; step <= 4; ++step) {
      const double lr = cfg.lr * (1 + 0.1 * step);
      Vec g = random_vec(rng, static_cast<size_t>(n), 0.1 * step);
      opt.step(p.data(), g.data(), lr);
      auto dg = to_dev<float>(g);
      adamw_step(ctx(), dp.data(), dg.data(), dm.data(), dv.data(), ddec.data(), masked ? dtr.data() : nullptr, n, lr,
                 cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, step);
      Vec got = from_dev(dp);
      int diff = 0;
      for (int64_t i = 0; i < n; ++i) diff += std::memcmp(&got[static_cast<size_t>(i)], &p[static_cast<size_t>(i)], 4) != 0;
      EXPECT_EQ(diff, 0) << "AdamW step " << step << (masked ? " (masked)" : "") << ": elements differing in bits";
    }
  }
}

TEST(DenseOpsCuda, SumSquaresAndScale) {
  REQUIRE_GPU();
  for (int64_t n : {1, 7, 1000, 1 << 20}) {
    Rng rng(1200 + uint64_t(n));
    Vec x = random_vec(rng, static_cast<size_t>(n), 3.0);
    double want = 0;
    for (float v : x) want += double(v) * double(v);
    auto dx = to_dev<float>(x);
    const double got = sum_squares(ctx(), dx.data(), n);
    EXPECT_NEAR(got, want, 1e-12 * want) << "sum_squares " << n;
    EXPECT_EQ(sum_squares(ctx(), dx.data(), n), got) << "sum_squares run to run";
    scale(ctx(), dx.data(), 0.3f, n);
    Vec s = from_dev(dx);
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += s[static_cast<size_t>(i)] != x[static_cast<size_t>(i)] * 0.3f;
    EXPECT_EQ(bad, 0) << "scale " << n;
  }
}

}  // namespace
}  // namespace wattmoe::cuda::test
