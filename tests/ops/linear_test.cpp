// gemm, linear_fwd/linear_bwd: float vs double, gradient check, accumulate semantics, null gradients,
// transposes/strides/alpha/beta of gemm against a naive triple loop, M = 1, M = 0, odd sizes.
#include "ops/linear.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct GemmCase : OpCaseBase {
  bool ta, tb;
  int64_t M, N, K, pad;  // pad: extra columns in every leading dimension (lda, ldb, ldc > the logical width)
  double alpha, beta;
  int64_t rows_a() const { return ta ? K : M; }
  int64_t cols_a() const { return ta ? M : K; }
  int64_t rows_b() const { return tb ? N : K; }
  int64_t cols_b() const { return tb ? K : N; }
  int64_t lda() const { return cols_a() + pad; }
  int64_t ldb() const { return cols_b() + pad; }
  int64_t ldc() const { return N + pad; }
  std::string name() const {
    return fmt::format("gemm ta={} tb={} M={} N={} K={} pad={} alpha={} beta={}", ta, tb, M, N, K, pad, alpha, beta);
  }
  std::vector<InputSpec> inputs() const {
    return {{"A", rows_a() * lda(), -1, 1, false}, {"B", rows_b() * ldb(), -1, 1, false},
            {"C0", M * ldc(), -1, 1, false}};
  }
  std::vector<int64_t> outputs() const { return {M * ldc()}; }
  BwdMode mode() const { return BwdMode::None; }
  double fwd_tol() const { return fp32_tol(K + 1); }  // a dot of length K plus the beta·C term
  double bwd_tol() const { return 0; }
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    out[0] = in[2];
    ops::gemm<T>(ta, tb, M, N, K, T(alpha), in[0].data(), lda(), in[1].data(), ldb(), T(beta), out[0].data(), ldc());
  }
  template <class T>
  void backward(const Bufs<T>&, const Bufs<T>&, const Bufs<T>&, const Bufs<T>&, const std::vector<T*>&) const {}

  // The same product by the definition, in double.
  std::vector<double> reference(const Bufs<double>& in) const {
    std::vector<double> c = in[2];
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t p = 0; p < K; ++p) {
          const double a = ta ? in[0][p * lda() + i] : in[0][i * lda() + p];
          const double b = tb ? in[1][j * ldb() + p] : in[1][p * ldb() + j];
          s += a * b;
        }
        c[i * ldc() + j] = alpha * s + beta * in[2][i * ldc() + j];
      }
    return c;
  }
};

TEST(OpGemm, FloatVsDoubleAndReference) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 7, 5}, {5, 1, 9}, {13, 11, 17},
                             {3, 33, 2}})
        for (int64_t pad : {0, 3}) {
          const GemmCase c{{}, ta, tb, M, N, K, pad, pad ? 0.5 : 1.0, pad ? -1.25 : 0.0};
          run_op_case(c, 7 + uint64_t(M * 100 + N * 10 + K));
          // Against the definition, in double: the only differences are rounding (≤ K·ε relative).
          Rng rng(99);
          Bufs<double> in;
          for (const auto& s : c.inputs()) {
            std::vector<double> v(size_t(s.numel));
            for (auto& x : v) x = rng.uniform() * 2 - 1;
            in.push_back(v);
          }
          Bufs<double> out, saved;
          run_forward<GemmCase, double>(c, in, out, saved);
          EXPECT_LE(norm_err(out[0], c.reference(in)), 1e-13) << c.name();
        }
}

TEST(OpGemm, EmptyProductsLeaveCAlone) {
  std::vector<float> A(6, 1.0f), B(6, 1.0f), C(6, 3.0f);
  ops::gemm<float>(false, false, 0, 3, 2, 1.0f, A.data(), 2, B.data(), 3, 0.0f, C.data(), 3);
  ops::gemm<float>(false, false, 2, 0, 2, 1.0f, A.data(), 2, B.data(), 3, 0.0f, C.data(), 3);
  for (float v : C) EXPECT_EQ(v, 3.0f);
}

struct LinearCase : OpCaseBase {
  int64_t M, K, N;  // rows, in, out
  bool bias;
  std::string name() const { return fmt::format("linear M={} in={} out={} bias={}", M, K, N, bias); }
  std::vector<InputSpec> inputs() const {
    std::vector<InputSpec> v{{"x", M * K}, {"W", N * K, -0.5, 0.5}};
    if (bias) v.push_back({"b", N});
    return v;
  }
  std::vector<int64_t> outputs() const { return {M * N}; }
  bool nullable_grads() const { return true; }
  double fwd_tol() const { return fp32_tol(K + 1); }                  // each y: a dot of length in, + the bias
  double bwd_tol() const { return fp32_tol(std::max(M, N) + 1); }     // dx sums over out; dW, db sum over rows
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    ops::linear_fwd<T>(in[0].data(), in[1].data(), bias ? in[2].data() : nullptr, out[0].data(), M, K, N);
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    ops::linear_bwd<T>(in[0].data(), in[1].data(), d[0].data(), g[0], g[1], bias ? g[2] : nullptr, M, K, N);
  }
};

TEST(OpLinear, Cases) {
  for (bool bias : {false, true})
    for (auto [M, K, N] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 16, 8}, {1, 7, 13}, {3, 5, 7},
                           {17, 9, 3}, {33, 12, 6}, {8, 32, 64}})
      run_op_case(LinearCase{{}, M, K, N, bias}, 11 + uint64_t(M * 1000 + K * 10 + N) + (bias ? 1 : 0));
}

TEST(OpLinear, ForwardOverwritesOutput) {
  // linear_fwd overwrites y (documented): garbage in y must not leak into the result, with or without a bias.
  const int64_t M = 3, K = 4, N = 5;
  std::vector<double> x(M * K), W(N * K), b(N);
  Rng rng(3);
  for (auto* v : {&x, &W, &b})
    for (auto& e : *v) e = rng.uniform() - 0.5;
  for (bool bias : {false, true}) {
    std::vector<double> y0(M * N, 0.0), y1(M * N, 1e6);
    ops::linear_fwd<double>(x.data(), W.data(), bias ? b.data() : nullptr, y0.data(), M, K, N);
    ops::linear_fwd<double>(x.data(), W.data(), bias ? b.data() : nullptr, y1.data(), M, K, N);
    EXPECT_EQ(y0, y1) << "bias=" << bias;
  }
}

TEST(OpLinear, ZeroRowsIsANoOp) {
  // M = 0 (an expert that got no tokens): forward writes nothing, backward adds nothing.
  std::vector<float> W(12, 1.0f), dW(12, 2.0f), db(3, 5.0f), y(3, 7.0f), b(3, 1.0f);
  ops::linear_fwd<float>(nullptr, W.data(), b.data(), y.data(), 0, 4, 3);
  ops::linear_bwd<float>(nullptr, W.data(), nullptr, nullptr, dW.data(), db.data(), 0, 4, 3);
  for (float v : y) EXPECT_EQ(v, 7.0f);
  for (float v : dW) EXPECT_EQ(v, 2.0f);
  for (float v : db) EXPECT_EQ(v, 5.0f);
}

}  // namespace
}  // namespace wattmoe::test
