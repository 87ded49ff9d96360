// RoPE (rotate-half): float vs double, gradient check (the backward is the inverse rotation), inverse = transpose,
// positions starting at pos0 > 0 (the KV-cache case), padded row strides, and the layout against the definition.
#include "ops/rope.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct RopeCase : OpCaseBase {
  int64_t T, n_heads, head_dim, pad, pos0, table_pos0;
  double theta;
  int64_t stride() const { return n_heads * head_dim + pad; }
  ops::RopeTable table() const { return ops::rope_table(table_pos0, pos0 + T - table_pos0 + 2, head_dim, theta); }
  std::string name() const {
    return fmt::format("rope T={} heads={} hd={} pad={} pos0={} table_pos0={} theta={}", T, n_heads, head_dim, pad,
                       pos0, table_pos0, theta);
  }
  std::vector<InputSpec> inputs() const { return {{"x", T * stride()}}; }
  std::vector<int64_t> outputs() const { return {T * stride()}; }
  // The op rotates in place; the model's backward is the inverse rotation of the upstream gradient, which the
  // test wraps to add into din, so accumulate semantics are the test's own and not checked.
  BwdMode mode() const { return BwdMode::Unchecked; }
  double fwd_tol() const { return fp32_tol(2); }  // two products and a sum per element, cos/sin rounded to float
  double bwd_tol() const { return fp32_tol(2); }
  template <class V>
  void forward(const Bufs<V>& in, Bufs<V>& out, Bufs<V>&) const {
    out[0] = in[0];
    ops::rope_apply<V>(out[0].data(), T, n_heads, head_dim, stride(), table(), pos0, false);
  }
  template <class V>
  void backward(const Bufs<V>&, const Bufs<V>&, const Bufs<V>&, const Bufs<V>& d, const std::vector<V*>& g) const {
    std::vector<V> t = d[0];
    ops::rope_apply<V>(t.data(), T, n_heads, head_dim, stride(), table(), pos0, true);
    for (size_t i = 0; i < t.size(); ++i) g[0][i] += t[i];
  }
};

TEST(OpRope, Cases) {
  run_op_case(RopeCase{{}, 1, 1, 2, 0, 0, 0, 1e4});
  run_op_case(RopeCase{{}, 7, 4, 8, 0, 0, 0, 1e4});
  run_op_case(RopeCase{{}, 5, 2, 12, 3, 0, 0, 5e5});   // padded rows (stride > heads·hd), head_dim 12
  run_op_case(RopeCase{{}, 1, 4, 8, 0, 9, 9, 1e4});    // one decode step at position 9
  run_op_case(RopeCase{{}, 3, 2, 16, 0, 40, 32, 1e6});  // pos0 > table start (table covers 32 ..)
  run_op_case(RopeCase{{}, 2, 3, 6, 1, 1000, 0, 1e4});  // large positions
}

std::vector<double> random_vec(Rng& rng, size_t n) {
  std::vector<double> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

TEST(OpRope, InverseIsTransposeAndUndoesForward) {
  const int64_t T = 6, nh = 3, hd = 10, pos0 = 17;
  const ops::RopeTable tab = ops::rope_table(pos0, T, hd, 1e4);
  Rng rng(8);
  const std::vector<double> x = random_vec(rng, T * nh * hd), y = random_vec(rng, T * nh * hd);
  std::vector<double> rx = x, ry = y;
  ops::rope_apply<double>(rx.data(), T, nh, hd, nh * hd, tab, pos0, false);
  ops::rope_apply<double>(ry.data(), T, nh, hd, nh * hd, tab, pos0, true);
  // <R x, y> = <x, R⁻¹ y>: the inverse is the transpose (a rotation).
  double a = 0, b = 0, nx = 0, nrx = 0;
  for (size_t i = 0; i < x.size(); ++i) a += rx[i] * y[i], b += x[i] * ry[i], nx += x[i] * x[i], nrx += rx[i] * rx[i];
  EXPECT_NEAR(a, b, 1e-12 * std::sqrt(nx * double(y.size())));
  EXPECT_NEAR(nx, nrx, 1e-12 * nx);  // norm preserved
  // R⁻¹ R x = x.
  std::vector<double> back = rx;
  ops::rope_apply<double>(back.data(), T, nh, hd, nh * hd, tab, pos0, true);
  EXPECT_LE(norm_err(back, x), 1e-14);
  std::vector<float> xf(x.begin(), x.end()), bf = xf;
  ops::rope_apply<float>(bf.data(), T, nh, hd, nh * hd, tab, pos0, false);
  ops::rope_apply<float>(bf.data(), T, nh, hd, nh * hd, tab, pos0, true);
  EXPECT_LE(norm_err(bf, xf), fp32_tol(4));  // two rotations: a few ulps
}

TEST(OpRope, OffsetTablesAgreeBitwise) {
  // A table that starts at pos0 holds exactly the rows of a table that starts at 0 (angles are float(pos)·inv_freq).
  const int64_t hd = 12, pos0 = 37, n = 5;
  const ops::RopeTable full = ops::rope_table(0, pos0 + n, hd, 1e6), part = ops::rope_table(pos0, n, hd, 1e6);
  ASSERT_EQ(part.half, hd / 2);
  for (int64_t p = 0; p < n; ++p)
    for (int64_t i = 0; i < hd / 2; ++i) {
      EXPECT_EQ(part.cos[p * 6 + i], full.cos[(pos0 + p) * 6 + i]);
      EXPECT_EQ(part.sin[p * 6 + i], full.sin[(pos0 + p) * 6 + i]);
    }
  // Applying at pos0 through either table gives the same bits.
  Rng rng(9);
  std::vector<double> x = random_vec(rng, n * 2 * hd), y = x;
  ops::rope_apply<double>(x.data(), n, 2, hd, 2 * hd, full, pos0, false);
  ops::rope_apply<double>(y.data(), n, 2, hd, 2 * hd, part, pos0, false);
  EXPECT_EQ(x, y);
}

TEST(OpRope, RotateHalfLayout) {
  // head_dim 4, θ = 1e4: frequencies 1 and θ^(-1/2) (float32, as transformers computes them). Dimension j pairs
  // with j + 2 (rotate_half), not with j + 1 (interleaved).
  const int64_t hd = 4;
  const double theta = 1e4;
  const float f1 = 1.0f / std::pow(float(theta), 0.5f);
  for (int64_t pos : {0, 1, 5, 300}) {
    const ops::RopeTable tab = ops::rope_table(0, pos + 1, hd, theta);
    std::vector<double> v{0.3, -1.1, 0.7, 2.0};
    ops::rope_apply<double>(v.data(), 1, 1, hd, hd, tab, pos, false);
    const double a0 = double(float(pos) * 1.0f), a1 = double(float(pos) * f1);
    const double want[4] = {0.3 * std::cos(a0) - 0.7 * std::sin(a0), -1.1 * std::cos(a1) - 2.0 * std::sin(a1),
                            0.7 * std::cos(a0) + 0.3 * std::sin(a0), 2.0 * std::cos(a1) + -1.1 * std::sin(a1)};
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(v[i], want[i], 1e-14) << "pos " << pos << " dim " << i;
  }
}

}  // namespace
}  // namespace wattmoe::test
