// The MoE combine and its backward (ops/rows.h) through the op harness: sum_rows forward, and as its backward
// gather_rows (∂src, each row scaled by its slot's weight) and row_dots (∂weight) — so the gradient check in double
// checks all three. Rows in reverse order of their (token, slot), every fifth slot empty (row_of −1), one token with
// no slot at all. By hand: a null weight is 1, empty slots add nothing, gather_rows and row_dots overwrite.
#include "ops/rows.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

// (token, slot) → row, and each row's token and slot, for N tokens of k slots.
struct RowMap {
  std::vector<int64_t> row_of;
  std::vector<int32_t> token, slot;
  RowMap(int64_t N, int k) : row_of(size_t(N * k), -1) {
    std::vector<int64_t> used;
    for (int64_t i = 0; i < N * k; ++i)
      if (i % 5 != 3 && i / k != N / 2) used.push_back(i);  // every fifth slot and token N/2's slots empty
    const int64_t R = int64_t(used.size());
    token.resize(size_t(R)), slot.resize(size_t(R));
    for (int64_t n = 0; n < R; ++n) {
      const int64_t r = R - 1 - n, i = used[size_t(n)];
      row_of[size_t(i)] = r, token[size_t(r)] = int32_t(i / k), slot[size_t(r)] = int32_t(i % k);
    }
  }
  int64_t rows() const { return int64_t(token.size()); }
};

struct SumRowsCase : OpCaseBase {
  int64_t N;
  int k;
  int64_t H;
  RowMap map{N, k};
  std::string name() const { return fmt::format("sum_rows N={} k={} H={}", N, k, H); }
  std::vector<InputSpec> inputs() const { return {{"src", map.rows() * H}, {"weight", N * k, 0, 1}, {"dst0", N * H}}; }
  std::vector<int64_t> outputs() const { return {N * H}; }
  double fwd_tol() const { return fp32_tol(k + 1); }  // k products summed, one add into dst
  double bwd_tol() const { return fp32_tol(double(H)); }  // ∂weight: H products summed
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>&) const {
    out[0] = in[2];
    ops::sum_rows<T>(in[0].data(), map.row_of.data(), in[1].data(), out[0].data(), N, k, H);
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>&, const Bufs<T>& d, const std::vector<T*>& g) const {
    const int64_t R = map.rows();
    std::vector<T> row_w(static_cast<size_t>(R)), dsrc(static_cast<size_t>(R * H)), dw(static_cast<size_t>(R));
    for (int64_t r = 0; r < R; ++r) row_w[size_t(r)] = in[1][size_t(map.token[size_t(r)] * k + map.slot[size_t(r)])];
    ops::gather_rows<T>(d[0].data(), map.token.data(), row_w.data(), dsrc.data(), R, H);
    ops::row_dots<T>(d[0].data(), map.token.data(), in[0].data(), dw.data(), R, H);
    for (int64_t i = 0; i < R * H; ++i) g[0][i] += dsrc[size_t(i)];
    for (int64_t r = 0; r < R; ++r) g[1][map.token[size_t(r)] * k + map.slot[size_t(r)]] += dw[size_t(r)];
    for (int64_t i = 0; i < N * H; ++i) g[2][i] += d[0][size_t(i)];
  }
};

TEST(OpSumRows, Cases) {
  run_op_case(SumRowsCase{{}, 3, 1, 1});
  run_op_case(SumRowsCase{{}, 7, 2, 33});
  run_op_case(SumRowsCase{{}, 16, 4, 64});
}

TEST(OpSumRows, NullWeightEmptySlotsAndOverwrites) {
  const RowMap map(4, 2);  // token 2 has no rows; slot 3 (token 1, slot 1) is empty
  const int64_t R = map.rows(), H = 3;
  ASSERT_EQ(R, 5);
  std::vector<double> src(size_t(R * H));
  for (size_t i = 0; i < src.size(); ++i) src[i] = double(i + 1);
  std::vector<double> dst(size_t(4 * H), 10.0), want = dst;
  for (int64_t i = 0; i < 8; ++i)
    if (map.row_of[size_t(i)] >= 0)
      for (int64_t j = 0; j < H; ++j) want[size_t(i / 2 * H + j)] += src[size_t(map.row_of[size_t(i)] * H + j)];
  ops::sum_rows<double>(src.data(), map.row_of.data(), nullptr, dst.data(), 4, 2, H);
  EXPECT_EQ(dst, want);
  for (int64_t j = 0; j < H; ++j) EXPECT_EQ(dst[size_t(2 * H + j)], 10.0) << "token 2 has no rows";
  std::vector<double> g(size_t(R * H), -7.0), dots(size_t(R), -7.0);
  ops::gather_rows<double>(dst.data(), map.token.data(), nullptr, g.data(), R, H);
  ops::row_dots<double>(dst.data(), map.token.data(), src.data(), dots.data(), R, H);
  for (int64_t r = 0; r < R; ++r) {
    double dot = 0;
    for (int64_t j = 0; j < H; ++j) {
      EXPECT_EQ(g[size_t(r * H + j)], dst[size_t(map.token[size_t(r)] * H + j)]) << "gather overwrites";
      dot += dst[size_t(map.token[size_t(r)] * H + j)] * src[size_t(r * H + j)];
    }
    EXPECT_EQ(dots[size_t(r)], dot) << "row_dots overwrites";
  }
}

}  // namespace
}  // namespace wattmoe::test
