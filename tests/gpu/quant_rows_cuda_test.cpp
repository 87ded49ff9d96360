// The device quantiser (ops/cuda/quant_rows.h) against the CPU reference (ops/quant.h's quantise_rows and
// dequantise_rows): codes, scales and the dequantised weights equal bit for bit, fp8 and int8, on fresh random
// matrices of odd sizes (0 rows, 1 × 1, columns below, at and past the block width) and adversarial rows: all
// zeros, signed zeros only, one outlier among values 30 binades down (e4m3 subnormals and zeros, int8 zeros), every
// e4m3 code's value and the midpoints between neighbours (ties to even) at the scale amax / 448, int8 half-integers.
// Outputs are poisoned before the call; a job may have no codes or scales. first_nonfinite_rows finds the first NaN
// or infinity per job and the quantiser leaves such a row, its codes and its scale untouched.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "ops/cuda/context.h"
#include "ops/cuda/quant_rows.h"
#include "ops/quant.h"

namespace wattmoe {
namespace {

using ops::ExpertPrecision;

struct Matrix {
  std::string what;
  int64_t rows, cols;
  std::vector<float> w;
};

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// The matrices of one format's check; rows of `cols` ≥ 1 each.
std::vector<Matrix> matrices(ExpertPrecision p, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.02f);
  std::vector<Matrix> out;
  for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {1, 1}, {3, 17}, {5, 255}, {4, 256},
                                                                     {7, 1000}, {33, 4096}}) {
    Matrix m{"random " + std::to_string(rows) + "x" + std::to_string(cols), rows, cols, {}};
    for (int64_t i = 0; i < rows * cols; ++i) m.w.push_back(nd(rng));
    out.push_back(std::move(m));
  }
  Matrix adv{"adversarial", 0, 300, {}};
  const auto row = [&](std::vector<float> r) {
    r.resize(size_t(adv.cols), r.empty() ? 0.f : r.back());
    adv.w.insert(adv.w.end(), r.begin(), r.end()), ++adv.rows;
  };
  row({0.f});                                              // all zeros: scale 1
  row({-0.f, 0.f, -0.f});                                  // signed zeros
  std::vector<float> outlier(size_t(adv.cols));             // one outlier, the rest 20 to 40 binades down
  for (size_t j = 0; j < outlier.size(); ++j) outlier[j] = std::ldexp(nd(rng), -int(j % 20) - 15);
  outlier[7] = 3.5f;
  row(outlier);
  if (p == ExpertPrecision::Fp8) {  // scale amax / 448 = 1 when amax = 448: the codes' values and their midpoints
    std::vector<float> codes, mids;
    for (int c = 0; c < 0x7F; ++c) {
      const float v = ops::fp8_e4m3_to_float(uint8_t(c)), next = ops::fp8_e4m3_to_float(uint8_t(c + 1));
      codes.push_back(c % 2 ? -v : v);
      if (c + 1 < 0x7F) mids.push_back((c % 2 ? -1.f : 1.f) * (v + next) / 2);
    }
    codes.push_back(448.f), mids.push_back(448.f);
    row(codes), row(mids);
  } else {  // scale 1 when amax = 127: half-integers tie to even
    std::vector<float> halves;
    for (int i = -127; i < 127; ++i) halves.push_back(float(i) + 0.5f);
    halves.push_back(127.f);
    row(halves);
  }
  out.push_back(std::move(adv));
  return out;
}

class QuantRowsCuda : public ::testing::TestWithParam<ExpertPrecision> {};

TEST_P(QuantRowsCuda, EqualsTheCpuReferenceBitForBit) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const ExpertPrecision p = GetParam();
  cuda::Context ctx;
  const std::vector<Matrix> ms = matrices(p, p == ExpertPrecision::Fp8 ? 11u : 12u);
  std::vector<cuda::DeviceBuffer<float>> w(ms.size()), s(ms.size());
  std::vector<cuda::DeviceBuffer<uint8_t>> c(ms.size());
  std::vector<cuda::QuantRowsJob> jobs;
  for (size_t i = 0; i < ms.size(); ++i) {
    const Matrix& m = ms[i];
    w[i].upload(m.w, ctx.stream());
    c[i].upload(std::vector<uint8_t>(m.w.size(), 0xAB), ctx.stream());  // poisoned
    s[i].upload(std::vector<float>(size_t(m.rows), std::nanf("")), ctx.stream());
    const bool bare = i == 1;  // one job without codes or scales
    jobs.push_back({w[i].data(), bare ? nullptr : c[i].data(), bare ? nullptr : s[i].data(), m.rows, m.cols});
  }
  const std::vector<int64_t> bad = cuda::first_nonfinite_rows(ctx, jobs);
  for (size_t i = 0; i < ms.size(); ++i) EXPECT_EQ(bad[i], -1) << ms[i].what;
  cuda::fake_quantise_rows(ctx, jobs, p);
  for (size_t i = 0; i < ms.size(); ++i) {
    const Matrix& m = ms[i];
    std::vector<uint8_t> want_c(m.w.size());
    std::vector<float> want_s(size_t(m.rows)), want_w(m.w.size());
    if (m.rows) {
      ops::quantise_rows(m.w.data(), m.rows, m.cols, p, want_c.data(), want_s.data(), m.what);
      ops::dequantise_rows(want_c.data(), want_s.data(), m.rows, m.cols, p, want_w.data());
    }
    const std::vector<float> got_w = w[i].download(ctx.stream()), got_s = s[i].download(ctx.stream());
    const std::vector<uint8_t> got_c = c[i].download(ctx.stream());
    int wrong = 0;
    for (size_t j = 0; j < m.w.size() && wrong < 5; ++j) {
      const bool ok = bits(got_w[j]) == bits(want_w[j]) && (i == 1 || got_c[j] == want_c[j]);
      if (!ok)
        ++wrong, ADD_FAILURE() << ms[i].what << " row " << j / size_t(m.cols) << " col " << j % size_t(m.cols)
                               << ": w " << m.w[j] << " → device " << got_w[j] << " (code " << int(got_c[j])
                               << "), reference " << want_w[j] << " (code " << int(want_c[j]) << ")";
    }
    for (int64_t r = 0; r < m.rows; ++r) {
      if (i == 1) {
        EXPECT_TRUE(std::isnan(got_s[size_t(r)])) << m.what << ": a job without scales got one";
      } else {
        EXPECT_EQ(bits(got_s[size_t(r)]), bits(want_s[size_t(r)])) << m.what << " row " << r << " scale";
      }
    }
  }
}

TEST_P(QuantRowsCuda, NonFiniteRowsAreFoundAndLeftAlone) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  const ExpertPrecision p = GetParam();
  cuda::Context ctx;
  const int64_t rows = 9, cols = 70;
  std::vector<float> a(size_t(rows * cols), 0.25f), b = a;
  a[size_t(5 * cols + 69)] = std::numeric_limits<float>::infinity();
  a[size_t(3 * cols + 1)] = std::nanf("");
  cuda::DeviceBuffer<float> da, db, sa;
  da.upload(a, ctx.stream()), db.upload(b, ctx.stream());
  sa.upload(std::vector<float>(size_t(rows), -1.f), ctx.stream());
  const std::vector<cuda::QuantRowsJob> jobs{{da.data(), nullptr, sa.data(), rows, cols},
                                             {db.data(), nullptr, nullptr, rows, cols}};
  EXPECT_EQ(cuda::first_nonfinite_rows(ctx, jobs), (std::vector<int64_t>{3, -1}));
  cuda::fake_quantise_rows(ctx, jobs, p);
  const std::vector<float> got = da.download(ctx.stream()), scales = sa.download(ctx.stream());
  for (int64_t r = 0; r < rows; ++r) {
    const bool finite = r != 3 && r != 5;
    EXPECT_EQ(scales[size_t(r)], finite ? 0.25f / (p == ExpertPrecision::Fp8 ? 448.f : 127.f) : -1.f) << "row " << r;
    if (finite) continue;
    for (int64_t j = 0; j < cols; ++j)
      EXPECT_EQ(bits(got[size_t(r * cols + j)]), bits(a[size_t(r * cols + j)])) << "row " << r << " col " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QuantRowsCuda, ::testing::Values(ExpertPrecision::Fp8, ExpertPrecision::Int8),
                         [](const ::testing::TestParamInfo<ExpertPrecision>& i) {
                           return std::string(ops::expert_precision_name(i.param));
                         });

}  // namespace
}  // namespace wattmoe
