// SwiGLU h = silu(g) ⊙ u: float vs double, gradient check of g and u, accumulate semantics, null gradients,
// extreme gate values; and the sigmoid helper.
#include "ops/activation.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct SwigluCase : OpCaseBase {
  int64_t n;
  double range = 4;
  std::string name() const { return fmt::format("swiglu n={} range={}", n, range); }
  std::vector<InputSpec> inputs() const { return {{"g", n, -range, range}, {"u", n}}; }
  std::vector<int64_t> outputs() const { return {n}; }
  bool nullable_grads() const { return true; }
  double fwd_tol() const { return fp32_tol(1); }  // elementwise: exp, a division, two products
  double bwd_tol() const { return fp32_tol(2); }  // elementwise, a few more products
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    ops::swiglu_fwd<T>(in[0].data(), in[1].data(), out[0].data(), n);
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::swiglu_bwd<T>(in[0].data(), in[1].data(), d[0].data(), g[0], g[1], n);
  }
};

TEST(OpSwiglu, Cases) {
  run_op_case(SwigluCase{{}, 1});
  run_op_case(SwigluCase{{}, 37});
  run_op_case(SwigluCase{{}, 256, 12.0});  // saturated gates on both sides
}

TEST(OpSwiglu, ExtremeGates) {
  // silu(g) → g for g ≫ 0 and → 0 for g ≪ 0; no NaN from exp overflow.
  std::vector<float> g{80.0f, -80.0f, 0.0f, -1000.0f, 1000.0f}, u(5, 2.0f), h(5), dh(5, 1.0f), dg(5, 0.0f), du(5, 0.0f);
  ops::swiglu_fwd<float>(g.data(), u.data(), h.data(), 5);
  ops::swiglu_bwd<float>(g.data(), u.data(), dh.data(), dg.data(), du.data(), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(std::isfinite(h[i]) && std::isfinite(dg[i]) && std::isfinite(du[i])) << i;
  }
  EXPECT_NEAR(h[0], 160.0f, 1e-3);
  EXPECT_NEAR(h[1], 0.0f, 1e-30);
  EXPECT_EQ(h[2], 0.0f);
  EXPECT_NEAR(dg[0], 2.0f, 1e-6);  // d silu/dg → 1
  EXPECT_NEAR(dg[2], 1.0f, 1e-7);  // silu'(0) = 1/2, times u = 2
  EXPECT_NEAR(du[2], 0.0f, 0.0f);
}

TEST(OpSigmoid, ValuesAndSymmetry) {
  EXPECT_EQ(ops::sigmoid(0.0), 0.5);
  for (double x : {0.1, 1.0, 3.0, 20.0}) EXPECT_NEAR(ops::sigmoid(x) + ops::sigmoid(-x), 1.0, 1e-15);
  EXPECT_EQ(ops::sigmoid(-1000.0f), 0.0f);
  EXPECT_EQ(ops::sigmoid(1000.0f), 1.0f);
}

}  // namespace
}  // namespace wattmoe::test
