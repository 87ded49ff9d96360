// softmax_fwd/softmax_bwd and logsumexp: float vs double, gradient check, accumulate semantics, in-place forward,
// stability for large logits, and the cross-op identity ∂ logsumexp / ∂x = softmax(x).
#include "ops/softmax.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct SoftmaxCase : OpCaseBase {
  int64_t rows, n;
  double range = 3;
  std::string name() const { return fmt::format("softmax rows={} n={} range={}", rows, n, range); }
  std::vector<InputSpec> inputs() const { return {{"x", rows * n, -range, range}}; }
  std::vector<int64_t> outputs() const { return {rows * n}; }
  double fwd_tol() const { return fp32_tol(n); }  // a sum of n exponentials, one division
  double bwd_tol() const { return fp32_tol(n); }  // Σ y·dy over n
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    ops::softmax_fwd<T>(in[0].data(), out[0].data(), rows, n);
  }
  template <class T>
  void backward(const Bufs<T>&, const Bufs<T>& out, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::softmax_bwd<T>(out[0].data(), d[0].data(), g[0], rows, n);
  }
};

TEST(OpSoftmax, SingleLogit) {
  // n = 1: y = 1 whatever x, so the gradient is exactly zero (and backward adds zero).
  std::vector<double> x{-7.5, 3.0}, y(2), dy{2.0, -1.0}, dx{0.25, 0.5};
  ops::softmax_fwd<double>(x.data(), y.data(), 2, 1);
  EXPECT_EQ(y, (std::vector<double>{1.0, 1.0}));
  ops::softmax_bwd<double>(y.data(), dy.data(), dx.data(), 2, 1);
  EXPECT_EQ(dx, (std::vector<double>{0.25, 0.5}));
}

TEST(OpSoftmax, Cases) {
  run_op_case(SoftmaxCase{{}, 1, 2});
  run_op_case(SoftmaxCase{{}, 7, 4});
  run_op_case(SoftmaxCase{{}, 13, 9});
  run_op_case(SoftmaxCase{{}, 3, 64, 8.0});
  run_op_case(SoftmaxCase{{}, 5, 5, 40.0});  // very peaky rows
}

TEST(OpSoftmax, InPlaceAndLargeLogits) {
  // y may alias x; logits of 1e4 must not overflow (the max is subtracted first).
  std::vector<float> x{1e4f, 1e4f - 1.0f, -1e4f, 1e4f}, y(4);
  ops::softmax_fwd<float>(x.data(), y.data(), 1, 4);
  ops::softmax_fwd<float>(x.data(), x.data(), 1, 4);
  EXPECT_EQ(x, y);
  const double e = std::exp(-1.0), z = 2 + e;
  EXPECT_NEAR(y[0], 1 / z, 1e-6);
  EXPECT_NEAR(y[1], e / z, 1e-6);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_NEAR(y[3], 1 / z, 1e-6);
  // Ties give equal probabilities.
  std::vector<double> t{0.5, 0.5, 0.5}, ty(3);
  ops::softmax_fwd<double>(t.data(), ty.data(), 1, 3);
  EXPECT_EQ(ty[0], ty[1]);
  EXPECT_EQ(ty[1], ty[2]);
}

// logsumexp of each row; its gradient is softmax (written here with softmax_fwd: a cross-op check).
struct LogsumexpCase : OpCaseBase {
  int64_t rows, n;
  double range = 3, offset = 0;
  std::string name() const { return fmt::format("logsumexp rows={} n={} range={} offset={}", rows, n, range, offset); }
  std::vector<InputSpec> inputs() const { return {{"x", rows * n, offset - range, offset + range}}; }
  std::vector<int64_t> outputs() const { return {rows}; }
  BwdMode mode() const { return BwdMode::Unchecked; }
  // A sum of n exponentials in T, then a log added to the max: relative to |lse| ≥ max|x|... use n + ulps.
  double fwd_tol() const { return fp32_tol(n); }
  double bwd_tol() const { return fp32_tol(n); }
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    for (int64_t i = 0; i < rows; ++i) out[0][i] = ops::logsumexp<T>(&in[0][i * n], n);
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    std::vector<T> p(size_t(rows * n));
    ops::softmax_fwd<T>(in[0].data(), p.data(), rows, n);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) g[0][i * n + j] += d[0][i] * p[i * n + j];
  }
};

TEST(OpLogsumexp, Cases) {
  run_op_case(LogsumexpCase{{}, 1, 2});
  run_op_case(LogsumexpCase{{}, 6, 7});
  run_op_case(LogsumexpCase{{}, 4, 33, 5.0});
  run_op_case(LogsumexpCase{{}, 3, 8, 2.0, 50.0});  // all logits near 50: exp(50) alone would lose the small terms
}

TEST(OpLogsumexp, LargeAndSingleValues) {
  std::vector<float> a{1000.0f, 1000.0f};
  EXPECT_NEAR(ops::logsumexp<float>(a.data(), 2), 1000.0 + std::log(2.0), 1e-4);
  std::vector<double> b{-1000.0, -1000.0, -1000.0};
  EXPECT_NEAR(ops::logsumexp<double>(b.data(), 3), -1000.0 + std::log(3.0), 1e-12);
  std::vector<double> c{3.25};
  EXPECT_EQ(ops::logsumexp<double>(c.data(), 1), 3.25);
  std::vector<double> d{0.0, -800.0};  // exp(-800) underflows to 0: result exactly 0
  EXPECT_EQ(ops::logsumexp<double>(d.data(), 2), 0.0);
}

}  // namespace
}  // namespace wattmoe::test
