// nll_loss and entropy_loss: float vs double, gradient check (the op overwrites dlogits with scale·∂sum), overwrite
// semantics, skipped rows (target < 0), values against the definitions, large logits.
#include "ops/loss.h"

#include <fmt/ranges.h>

#include "op_harness.h"
#include "ops/softmax.h"

namespace wattmoe::test {
namespace {

// The loss is the single output; the upstream gradient r[0] is passed as `scale`.
struct NllCase : OpCaseBase {
  int64_t rows, V;
  std::vector<int32_t> targets;  // < 0 skips the row
  double range = 4;
  std::string name() const { return fmt::format("nll rows={} V={} targets={} range={}", rows, V, fmt::join(targets, ","), range); }
  std::vector<InputSpec> inputs() const { return {{"logits", rows * V, -range, range}}; }
  std::vector<int64_t> outputs() const { return {1}; }
  BwdMode mode() const { return BwdMode::Overwrites; }
  // Sums run in double; the float error is the rounding of x − max in float and of the result to float.
  double fwd_tol() const { return fp32_tol(1, 8); }
  double bwd_tol() const { return fp32_tol(1, 8); }
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    out[0][0] = T(ops::nll_loss<T>(in[0].data(), targets.data(), rows, V, nullptr, 1.0));
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::nll_loss<T>(in[0].data(), targets.data(), rows, V, g[0], double(d[0][0]));
  }
};

struct EntropyCase : OpCaseBase {
  int64_t rows, V;
  double range = 4;
  std::string name() const { return fmt::format("entropy rows={} V={} range={}", rows, V, range); }
  std::vector<InputSpec> inputs() const { return {{"logits", rows * V, -range, range}}; }
  std::vector<int64_t> outputs() const { return {1}; }
  BwdMode mode() const { return BwdMode::Overwrites; }
  double fwd_tol() const { return fp32_tol(1, 8); }  // as nll: double sums over float inputs
  double bwd_tol() const { return fp32_tol(1, 8); }
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    out[0][0] = T(ops::entropy_loss<T>(in[0].data(), rows, V, nullptr, 1.0));
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::entropy_loss<T>(in[0].data(), rows, V, g[0], double(d[0][0]));
  }
};

TEST(OpNll, Cases) {
  run_op_case(NllCase{{}, 1, 2, {1}});
  run_op_case(NllCase{{}, 4, 7, {0, 6, 3, 3}});
  run_op_case(NllCase{{}, 6, 13, {-1, 12, -1, 0, 5, -7}});  // skipped rows (any negative target)
  run_op_case(NllCase{{}, 3, 64, {63, -1, 17}, 12.0});
}

TEST(OpEntropy, Cases) {
  run_op_case(EntropyCase{{}, 1, 2});
  run_op_case(EntropyCase{{}, 5, 9});
  run_op_case(EntropyCase{{}, 3, 64, 10.0});
}

TEST(OpNll, ValueAndSkippedRows) {
  const int64_t rows = 4, V = 5;
  Rng rng(12);
  std::vector<double> x(rows * V);
  for (auto& v : x) v = 3 * rng.normal();
  const std::vector<int32_t> t{2, -1, 4, -1};
  double want = 0;
  for (int64_t i = 0; i < rows; ++i)
    if (t[i] >= 0) want += ops::logsumexp<double>(&x[i * V], V) - x[i * V + t[i]];
  std::vector<double> d(rows * V, 123.0);
  EXPECT_NEAR(ops::nll_loss<double>(x.data(), t.data(), rows, V, d.data(), 0.5), want, 1e-12);
  for (int64_t j = 0; j < V; ++j) {
    EXPECT_EQ(d[1 * V + j], 0.0) << "skipped row must get a zero gradient";
    EXPECT_EQ(d[3 * V + j], 0.0);
  }
  // Each scored row's gradient is scale·(softmax − onehot): it sums to zero.
  for (int64_t i : {0, 2}) {
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += d[i * V + j];
    EXPECT_NEAR(s, 0.0, 1e-15);
  }
  // All rows skipped: zero loss, zero gradient.
  const std::vector<int32_t> none(rows, -1);
  EXPECT_EQ(ops::nll_loss<double>(x.data(), none.data(), rows, V, d.data(), 1.0), 0.0);
  for (double v : d) EXPECT_EQ(v, 0.0);
}

TEST(OpEntropy, ValueAndExtremes) {
  // Uniform logits: entropy log V with a zero gradient; one dominant logit: entropy → 0.
  const int64_t V = 8;
  std::vector<double> u(V, 0.7), d(V, 5.0);
  EXPECT_NEAR(ops::entropy_loss<double>(u.data(), 1, V, d.data(), 1.0), std::log(double(V)), 1e-14);
  for (double v : d) EXPECT_NEAR(v, 0.0, 1e-15);
  std::vector<float> peak(V, -1e4f), df(V);
  peak[3] = 1e4f;
  const double h = ops::entropy_loss<float>(peak.data(), 1, V, df.data(), 1.0);
  EXPECT_TRUE(std::isfinite(h));
  EXPECT_NEAR(h, 0.0, 1e-30);
  for (float v : df) EXPECT_TRUE(std::isfinite(v));
  // Against the definition on random rows.
  Rng rng(13);
  std::vector<double> x(3 * V);
  for (auto& v : x) v = 2 * rng.normal();
  double want = 0;
  for (int64_t i = 0; i < 3; ++i) {
    std::vector<double> p(V);
    ops::softmax_fwd<double>(&x[i * V], p.data(), 1, V);
    for (double q : p) want -= q * std::log(q);
  }
  EXPECT_NEAR(ops::entropy_loss<double>(x.data(), 3, V, nullptr, 1.0), want, 1e-13);
}

TEST(OpNll, LargeLogitsStayFinite) {
  std::vector<float> x{1e4f, -1e4f, 0.0f, 5e3f};
  const std::vector<int32_t> t{1};
  std::vector<float> d(4);
  const double l = ops::nll_loss<float>(x.data(), t.data(), 1, 4, d.data(), 1.0);
  EXPECT_NEAR(l, 2e4, 1e-2);
  for (float v : d) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(d[0], 1.0f, 1e-6);
  EXPECT_NEAR(d[1], -1.0f, 1e-6);
}

}  // namespace
}  // namespace wattmoe::test
