// The LoRA branch (ops/lora.h) through the op harness: y = y0 + s·(x·Aᵀ)·Bᵀ forward, dx, dA, dB backward (each
// nullable, all accumulating; the gradient check in double covers all three and y0's pass-through). By hand: a zero B
// leaves y bitwise as it was, n = 0 (an expert with no rows) touches nothing, and lora_merge's W + s·B·A run as a
// plain linear equals linear + branch.
#include "ops/lora.h"

#include "ops/linear.h"
#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct LoraCase : OpCaseBase {
  int64_t n, in, out, r;
  double scale;
  std::string name() const { return fmt::format("lora n={} in={} out={} r={} s={}", n, in, out, r, scale); }
  std::vector<InputSpec> inputs() const {
    return {{"x", n * in}, {"A", r * in, -0.5, 0.5}, {"B", out * r, -0.5, 0.5}, {"y0", n * out}};
  }
  std::vector<int64_t> outputs() const { return {n * out}; }
  bool nullable_grads() const { return true; }
  double fwd_tol() const { return fp32_tol(in + r + 1); }  // t: a dot of length in; y: one of length r, + y0
  double bwd_tol() const { return fp32_tol(double(std::max({n, in, out, r})) * 2); }  // dt sums over out, dA/dB over n
  template <class T>
  void forward(const Bufs<T>& v, Bufs<T>& o, Bufs<T>&) const {
    o[0] = v[3];
    ops::lora_fwd<T>(v[0].data(), v[1].data(), v[2].data(), T(scale), o[0].data(), n, in, out, r);
  }
  template <class T>
  void backward(const Bufs<T>& v, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::lora_bwd<T>(v[0].data(), v[1].data(), v[2].data(), T(scale), d[0].data(), g[0], g[1], g[2], n, in, out, r);
    if (g[3])
      for (int64_t i = 0; i < n * out; ++i) g[3][i] += d[0][size_t(i)];
  }
};

TEST(OpLora, Cases) {
  run_op_case(LoraCase{{}, 1, 1, 1, 1, 1.0});
  run_op_case(LoraCase{{}, 5, 7, 6, 3, 1.7});
  run_op_case(LoraCase{{}, 17, 12, 33, 8, 0.5});
  run_op_case(LoraCase{{}, 3, 64, 16, 16, 2.0});   // rank = out
  run_op_case(LoraCase{{}, 33, 9, 40, 1, -0.75});  // rank 1, negative scale
}

TEST(OpLora, ZeroBLeavesTheOutputBitwise) {
  const int64_t n = 4, in = 6, out = 5, r = 2;
  Rng rng(4);
  std::vector<float> x(n * in), A(r * in), B(out * r, 0.f), y(n * out);
  for (auto* v : {&x, &A, &y})
    for (auto& e : *v) e = float(rng.normal());
  const std::vector<float> y0 = y;
  ops::lora_fwd<float>(x.data(), A.data(), B.data(), 1.5f, y.data(), n, in, out, r);
  EXPECT_EQ(y, y0);
}

TEST(OpLora, NoRowsIsANoOp) {
  std::vector<float> A(6, 1.f), B(6, 1.f), y(3, 7.f), dA(6, 2.f), dB(6, 5.f);
  ops::lora_fwd<float>(nullptr, A.data(), B.data(), 1.f, y.data(), 0, 3, 3, 2);
  ops::lora_bwd<float>(nullptr, A.data(), B.data(), 1.f, nullptr, nullptr, dA.data(), dB.data(), 0, 3, 3, 2);
  for (float v : y) EXPECT_EQ(v, 7.f);
  for (float v : dA) EXPECT_EQ(v, 2.f);
  for (float v : dB) EXPECT_EQ(v, 5.f);
}

TEST(OpLora, MergedWeightsEqualLinearPlusBranch) {
  const int64_t n = 7, in = 9, out = 11, r = 3;
  const float s = 0.8f;
  Rng rng(5);
  std::vector<float> x(n * in), W(out * in), A(r * in), B(out * r), merged(out * in);
  for (auto* v : {&x, &W, &A, &B})
    for (auto& e : *v) e = float(rng.normal());
  ops::lora_merge<float>(W.data(), A.data(), B.data(), s, merged.data(), out, in, r);
  std::vector<float> want(n * out), got(n * out);
  ops::linear_fwd<float>(x.data(), W.data(), nullptr, want.data(), n, in, out);
  ops::lora_fwd<float>(x.data(), A.data(), B.data(), s, want.data(), n, in, out, r);
  ops::linear_fwd<float>(x.data(), merged.data(), nullptr, got.data(), n, in, out);
  // Different association ((x·Aᵀ)·Bᵀ against x·(B·A)ᵀ): equal to fp32 rounding over in + r terms.
  EXPECT_LE(norm_err(got, want), fp32_tol(in + r, 64));
}

}  // namespace
}  // namespace wattmoe::test
