// The element-wise ops (ops/elementwise.h) through the op harness: float against double, gradient checks in double,
// accumulation, null gradients; clamp's edges (values at and beyond the limit, NaN) and the gated add's saturated
// gates by hand.
#include "ops/elementwise.h"

#include <cmath>
#include <limits>

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct ClampCase : OpCaseBase {
  int64_t n;
  double lim;
  std::string name() const { return fmt::format("clamp n={} lim={}", n, lim); }
  std::vector<InputSpec> inputs() const { return {{"x", n, -3, 3}}; }
  std::vector<int64_t> outputs() const { return {n}; }
  std::vector<int64_t> saved() const { return {n}; }
  double fwd_tol() const { return 0; }        // a copy or the limit: exact in both precisions
  double bwd_tol() const { return kU32 * 4; }  // the harness's accumulation adds one rounding
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>& saved) const {
    out[0] = in[0];
    ops::clamp_fwd<T>(out[0].data(), saved[0].data(), T(lim), n);
  }
  template <class T>
  void backward(const Bufs<T>&, const Bufs<T>&, const Bufs<T>& saved, const Bufs<T>& d,
                const std::vector<T*>& g) const {
    std::vector<T> dy = d[0];
    ops::clamp_bwd<T>(saved[0].data(), T(lim), dy.data(), n);
    for (int64_t i = 0; i < n; ++i) g[0][i] += dy[size_t(i)];
  }
};

TEST(OpClamp, Cases) {
  run_op_case(ClampCase{{}, 1, 8.0});    // inside the limit
  run_op_case(ClampCase{{}, 257, 1.5});  // about half of the values beyond it
  run_op_case(ClampCase{{}, 64, 2.5});
}

TEST(OpClamp, EdgesAndNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x{-2.f, -1.f, -0.5f, 1.f, 2.f, nan, -inf}, pre(x.size());
  ops::clamp_fwd<float>(x.data(), pre.data(), 1.f, int64_t(x.size()));
  const std::vector<float> want{-1.f, -1.f, -0.5f, 1.f, 1.f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(x[i], want[i]) << i;
  EXPECT_TRUE(std::isnan(x[5]) && std::isnan(pre[5]));
  EXPECT_EQ(x[6], -1.f);
  EXPECT_EQ(pre[0], -2.f);
  std::vector<float> dy(x.size(), 3.f);
  ops::clamp_bwd<float>(pre.data(), 1.f, dy.data(), int64_t(dy.size()));
  const std::vector<float> dwant{0.f, 3.f, 3.f, 3.f, 0.f, 3.f, 0.f};  // ±lim itself passes; NaN passes
  EXPECT_EQ(dy, dwant);
}

struct GatedAddCase : OpCaseBase {
  int64_t rows, H;
  std::string name() const { return fmt::format("gated_add rows={} H={}", rows, H); }
  std::vector<InputSpec> inputs() const {
    return {{"gate", rows, -4, 4}, {"y", rows * H}, {"out0", rows * H}};
  }
  std::vector<int64_t> outputs() const { return {rows * H}; }
  bool nullable_grads() const { return true; }
  double fwd_tol() const { return fp32_tol(1); }  // a sigmoid, a product and an add per element
  double bwd_tol() const { return fp32_tol(double(H)); }  // dgate sums H products
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    out[0] = in[2];  // the op adds into out
    ops::gated_add_fwd<T>(in[0].data(), in[1].data(), out[0].data(), rows, H);
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::gated_add_bwd<T>(in[0].data(), in[1].data(), d[0].data(), g[1], g[0], rows, H);
    if (g[2])
      for (int64_t i = 0; i < rows * H; ++i) g[2][i] += d[0][size_t(i)];  // out0 passes straight through
  }
};

TEST(OpGatedAdd, Cases) {
  run_op_case(GatedAddCase{{}, 1, 1});
  run_op_case(GatedAddCase{{}, 5, 33});
  run_op_case(GatedAddCase{{}, 16, 128});
}

TEST(OpGatedAdd, SaturatedGates) {  // sigmoid(±1000): the row added whole or not at all; the gate's gradient 0
  const std::vector<double> gate{1000.0, -1000.0}, y{2.0, 3.0, 4.0, 5.0}, dout{1.0, 1.0, 1.0, 1.0};
  std::vector<double> out(4, 1.0), dy(4, 0.0), dgate(2, 0.0);
  ops::gated_add_fwd<double>(gate.data(), y.data(), out.data(), 2, 2);
  EXPECT_EQ(out, (std::vector<double>{3.0, 4.0, 1.0, 1.0}));
  ops::gated_add_bwd<double>(gate.data(), y.data(), dout.data(), dy.data(), dgate.data(), 2, 2);
  EXPECT_EQ(dy, (std::vector<double>{1.0, 1.0, 0.0, 0.0}));
  EXPECT_EQ(dgate, (std::vector<double>{0.0, 0.0}));
}

}  // namespace
}  // namespace wattmoe::test
