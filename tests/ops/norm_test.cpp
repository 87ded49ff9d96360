// rmsnorm_fwd/rmsnorm_bwd: float vs double, gradient check of x and w, accumulate semantics, null gradients,
// in-place forward (y aliasing x), and the definition y = w ⊙ x / √(mean(x²) + eps).
#include "ops/norm.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct RmsnormCase : OpCaseBase {
  int64_t rows, dim;
  double eps;
  double scale = 1;  // input magnitude (small values make eps matter)
  std::string name() const { return fmt::format("rmsnorm rows={} dim={} eps={} scale={}", rows, dim, eps, scale); }
  std::vector<InputSpec> inputs() const { return {{"x", rows * dim, -scale, scale}, {"w", dim, 0.5, 1.5}}; }
  std::vector<int64_t> outputs() const { return {rows * dim}; }
  std::vector<int64_t> saved() const { return {rows}; }
  bool nullable_grads() const { return true; }
  double fwd_tol() const { return fp32_tol(dim); }  // Σx² over dim, then rsqrt and two products
  // dx: a dot over dim, times r³ (the cancellation w·dy·r − c·x is bounded by the normalization); dw: Σ over rows
  double bwd_tol() const { return fp32_tol(dim + rows, 32); }
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>& saved) const {
    ops::rmsnorm_fwd<T>(in[0].data(), in[1].data(), out[0].data(), saved[0].data(), rows, dim, eps);
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>& saved, const Bufs<T>& d,
                const std::vector<T*>& g) const {
    ops::rmsnorm_bwd<T>(in[0].data(), in[1].data(), saved[0].data(), d[0].data(), g[0], g[1], rows, dim);
  }
};

TEST(OpRmsnorm, Cases) {
  // dim = 1: y ≈ w·sign(x) and dx ∝ eps/(x² + eps)^1.5 is a cancellation of two O(r) terms, conditioned by
  // (x² + eps)/eps; eps = 1 keeps that ≤ 2 so the generic tolerances apply.
  run_op_case(RmsnormCase{{}, 1, 1, 1.0});
  run_op_case(RmsnormCase{{}, 3, 2, 1e-5});
  run_op_case(RmsnormCase{{}, 1, 32, 1e-6});
  run_op_case(RmsnormCase{{}, 7, 13, 1e-5});
  run_op_case(RmsnormCase{{}, 33, 48, 1e-5});
  run_op_case(RmsnormCase{{}, 5, 9, 1e-2, 0.05});  // eps comparable to mean(x²): the eps term must be in the root
}

TEST(OpRmsnorm, MatchesDefinitionAndSavesRstd) {
  const int64_t rows = 4, dim = 6;
  const double eps = 1e-3;
  Rng rng(5);
  std::vector<double> x(rows * dim), w(dim), y(rows * dim), rstd(rows);
  for (auto& v : x) v = rng.normal();
  for (auto& v : w) v = 1 + 0.1 * rng.normal();
  ops::rmsnorm_fwd<double>(x.data(), w.data(), y.data(), rstd.data(), rows, dim, eps);
  for (int64_t i = 0; i < rows; ++i) {
    double ms = 0;
    for (int64_t j = 0; j < dim; ++j) ms += x[i * dim + j] * x[i * dim + j] / dim;
    const double r = 1 / std::sqrt(ms + eps);
    EXPECT_NEAR(rstd[i], r, 1e-14 * r);
    for (int64_t j = 0; j < dim; ++j) EXPECT_NEAR(y[i * dim + j], w[j] * x[i * dim + j] * r, 1e-14);
  }
  // rstd may be null for inference: same output.
  std::vector<double> y2(rows * dim);
  ops::rmsnorm_fwd<double>(x.data(), w.data(), y2.data(), nullptr, rows, dim, eps);
  EXPECT_EQ(y, y2);
}

TEST(OpRmsnorm, InPlaceForwardEqualsOutOfPlace) {
  // Documented: y may alias x.
  const int64_t rows = 5, dim = 11;
  Rng rng(6);
  std::vector<float> x(rows * dim), w(dim), y(rows * dim), r1(rows), r2(rows);
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : w) v = float(1 + 0.1 * rng.normal());
  ops::rmsnorm_fwd<float>(x.data(), w.data(), y.data(), r1.data(), rows, dim, 1e-5);
  ops::rmsnorm_fwd<float>(x.data(), w.data(), x.data(), r2.data(), rows, dim, 1e-5);
  EXPECT_EQ(0, std::memcmp(x.data(), y.data(), sizeof(float) * x.size()));
  EXPECT_EQ(r1, r2);
}

}  // namespace
}  // namespace wattmoe::test
