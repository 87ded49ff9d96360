// MoeLayerCuda's decode path over weight-only quantised experts (fp8 e4m3, int8; ops/quant.h), against the CPU
// reference of the dequantised layer: the experts as the CPU quantiser's code · scale, in double (exact), through the
// same harness as the bf16 layer (moe_layer_harness.h check_layer_output_with: its tolerance and its reasoning hold
// unchanged, since the kernels form Σ code·x in fp32 and apply the row scale once, which differs from Σ (code·scale)·x
// by fp32 roundings only — see the harness's comment). The routing is not the subject here (moe_layer_test.cpp checks
// it): the reference uses the layer's own ids and fp32 weights, and the routing must equal a bf16 layer's with the
// same router (the experts do not route).
// Every case: fresh random inputs from its own seed, adversarial weight rows (a zero row: scale 1; a row spanning 20
// binades: e4m3 subnormal codes and int8 zeros; one outlier column), the output poisoned with NaN before the forward,
// run twice (bitwise equal), then the same layer with larger T (the prefill path) still matching the bf16 copy of the
// dequantised experts, and Bf16 switching decode back to the bf16 kernels bit for bit.
// On failure the message names the case (size, route), the format, and the first differing elements.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/moe_cuda.h"
#include "ops/quant.h"
#include "moe_layer_harness.h"

namespace wattmoe {
namespace ops {
std::ostream& operator<<(std::ostream& os, ExpertPrecision p) { return os << expert_precision_name(p); }
}  // namespace ops
namespace {

using ops::ExpertPrecision;
using test::Route;
using test::to_host;
using test::Weights;

struct QCase {
  const char* name;
  int T, H, I, E, k;  // T <= 8: the decode path; H, I multiples of 16
  bool renorm;
  Route route;
};

std::ostream& operator<<(std::ostream& os, const QCase& c) { return os << c.name; }

// The quantised experts of w: codes and scales per tensor (gate, up, down), the dequantised values, and their bf16
// copy (what the prefill path reads in a fake-quantised model).
struct QuantExperts {
  std::vector<uint8_t> code[3];
  std::vector<float> scale[3], deq[3];
  Weights bf16;  // router as w's; experts bf16(code · scale)
};

QuantExperts quantise(const Weights& w, int H, int I, int E, ExpertPrecision p) {
  QuantExperts q;
  const std::vector<uint16_t>* src[3] = {&w.gate, &w.up, &w.down};
  std::vector<uint16_t>* dst[3] = {&q.bf16.gate, &q.bf16.up, &q.bf16.down};
  q.bf16.router = w.router;
  for (int m = 0; m < 3; ++m) {
    const int64_t rows = int64_t(E) * (m == 2 ? H : I), cols = m == 2 ? I : H;
    std::vector<float> f(src[m]->size());
    for (size_t i = 0; i < f.size(); ++i) f[i] = bf16_to_f32((*src[m])[i]);
    q.code[m].resize(f.size()), q.scale[m].resize(size_t(rows));
    ops::quantise_rows(f.data(), rows, cols, p, q.code[m].data(), q.scale[m].data());
    q.deq[m].resize(f.size());
    ops::dequantise_rows(q.code[m].data(), q.scale[m].data(), rows, cols, p, q.deq[m].data());
    dst[m]->resize(f.size());
    for (size_t i = 0; i < f.size(); ++i) (*dst[m])[i] = f32_to_bf16(q.deq[m][i]);
  }
  return q;
}

// Rows that stress the quantiser: gate row 0 of expert 0 all zero (scale 1), gate row 1 spanning 20 binades with
// alternating signs (e4m3 subnormals, int8 zeros), down row 0 of the last expert one large outlier (the rest of the
// row lands on few codes).
void adversarial_rows(Weights& w, int H, int I, int E) {
  for (int j = 0; j < H; ++j) w.gate[size_t(j)] = 0;
  if (I > 1)
    for (int j = 0; j < H; ++j) w.gate[size_t(H + j)] = test::bf((j & 1 ? -0.1 : 0.1) * std::ldexp(1.0, -(j % 20)));
  w.down[size_t(E - 1) * H * I] = test::bf(2.0);
}

struct LayerRun {
  std::vector<uint16_t> out;
  std::vector<int32_t> ids;
  std::vector<float> w;
};

// One forward of `layer` on x (T tokens), output poisoned with NaN first.
LayerRun forward(MoeLayerCuda& layer, const std::vector<uint16_t>& x, int T, int H, int S) {
  const size_t nx = size_t(T) * H;
  void *dx = nullptr, *dout = nullptr;
  EXPECT_EQ(cudaMalloc(&dx, nx * 2), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&dout, nx * 2), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(dx, x.data(), nx * 2, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemset(dout, 0xff, nx * 2), cudaSuccess);  // bf16 NaN: unwritten outputs show
  layer.forward(dx, dout, T, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  LayerRun r;
  r.out = to_host(static_cast<const uint16_t*>(dout), nx);
  r.ids = to_host(layer.topk_ids(), size_t(T) * S);
  r.w = to_host(layer.topk_weights(), size_t(T) * S);
  cudaFree(dx);
  cudaFree(dout);
  return r;
}

class QuantDecodeTest : public ::testing::TestWithParam<std::tuple<QCase, ExpertPrecision>> {};

TEST_P(QuantDecodeTest, MatchesDequantisedCpuReference) {
  const QCase& c = std::get<0>(GetParam());
  const ExpertPrecision p = std::get<1>(GetParam());
  SCOPED_TRACE(std::string(c.name) + " " + ops::expert_precision_name(p) + " T=" + std::to_string(c.T) +
               " H=" + std::to_string(c.H) + " I=" + std::to_string(c.I) + " E=" + std::to_string(c.E) +
               " k=" + std::to_string(c.k));
  const int Tmax = 24;  // room for the prefill check below
  Weights w;
  std::vector<uint16_t> x;
  test::make_inputs(Tmax, c.H, c.I, c.E, c.route, std::hash<std::string>{}(c.name) + int(p), w, x);
  adversarial_rows(w, c.H, c.I, c.E);
  const QuantExperts q = quantise(w, c.H, c.I, c.E, p);

  MoeCudaOptions opt;
  opt.decode_max_tokens = 8;
  MoeLayerCuda layer({c.H, c.I, c.E, c.k, c.renorm}, Tmax, opt);
  layer.upload(q.bf16.router.data(), q.bf16.gate.data(), q.bf16.up.data(), q.bf16.down.data());
  layer.upload_quantised_experts(p, q.code[0].data(), q.code[1].data(), q.code[2].data(), q.scale[0].data(),
                                 q.scale[1].data(), q.scale[2].data());
  ASSERT_EQ(layer.decode_precision(), p);
  ASSERT_EQ(layer.path_for(c.T), 0) << "the case must take the decode path";

  const LayerRun g = forward(layer, x, c.T, c.H, c.k);
  std::vector<double> wref(g.w.begin(), g.w.end());
  const auto deq = [&](int m, size_t i) { return double(q.deq[m][i]); };
  test::check_layer_output_with(c.T, c.H, c.I, c.k, deq, x, g.out, g.ids, wref);
  if (HasFailure()) return;

  // Run twice: bitwise equal (no atomics in the decode path).
  EXPECT_EQ(forward(layer, x, c.T, c.H, c.k).out, g.out) << "second forward differs";

  // The routing is the bf16 layer's: the same router, and Bf16 brings back the bf16 decode kernels bit for bit.
  MoeLayerCuda plain({c.H, c.I, c.E, c.k, c.renorm}, Tmax, opt);
  plain.upload(q.bf16.router.data(), q.bf16.gate.data(), q.bf16.up.data(), q.bf16.down.data());
  const LayerRun b = forward(plain, x, c.T, c.H, c.k);
  EXPECT_EQ(b.ids, g.ids) << "quantised experts changed the routing";
  layer.use_device_quantised_experts(ExpertPrecision::Bf16, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  EXPECT_EQ(forward(layer, x, c.T, c.H, c.k).out, b.out) << "Bf16 did not switch back to the bf16 decode kernels";

  // Prefill (T > decode_max_tokens) ignores the codes and reads the bf16 copy of the dequantised experts.
  layer.upload_quantised_experts(p, q.code[0].data(), q.code[1].data(), q.code[2].data(), q.scale[0].data(),
                                 q.scale[1].data(), q.scale[2].data());
  const LayerRun pf = forward(layer, x, Tmax, c.H, c.k);
  std::vector<double> pref(pf.w.begin(), pf.w.end());
  test::check_layer_output(Tmax, c.H, c.I, c.k, q.bf16, x, pf.out, pf.ids, pref);
}

// clang-format off
const QCase kQCases[] = {
  // name            T    H     I    E  k  renorm route
  {"t1",             1,  256,  320,  8, 2, true,  Route::Random},
  {"t3_odd_chunks",  3,  208,  336,  8, 2, true,  Route::Random},  // 13 and 21 chunks of 16: idle lanes
  {"t5",             5,  512,  256,  8, 2, false, Route::Random},
  {"t8",             8,  256,  192,  8, 2, true,  Route::Random},
  {"one_expert",     8,  128,  144,  8, 2, true,  Route::OneExpert},
  {"dead_expert",    8,  256,  144,  8, 2, true,  Route::DeadExpert},  // an expert with no token
  {"all_tie_kE",     8,  144,   64,  4, 4, true,  Route::AllTie},
  {"pair_tie",       6,  256,  128,  8, 3, true,  Route::PairTie},
  {"k1",             7,  272,  208,  6, 1, false, Route::Random},
  {"one_expert_e1",  2,   64,   48,  1, 1, true,  Route::Random},
  {"long_k",         4, 4096, 1024,  8, 2, true,  Route::Random},  // several chunks per lane, one ahead
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(
    Cases, QuantDecodeTest,
    ::testing::Combine(::testing::ValuesIn(kQCases), ::testing::Values(ExpertPrecision::Fp8, ExpertPrecision::Int8)),
    [](const ::testing::TestParamInfo<std::tuple<QCase, ExpertPrecision>>& i) {
      return std::string(std::get<0>(i.param).name) + "_" + ops::expert_precision_name(std::get<1>(i.param));
    });

TEST(MoeLayerCudaQuant, RefusesSizesNotMultiplesOf16) {
  MoeLayerCuda layer({200, 64, 8, 2, true}, 4);  // H = 200: fine for bf16, not for 16 codes per load
  const float s = 1.f;
  try {
    layer.use_device_quantised_experts(ExpertPrecision::Fp8, &s, &s, &s, &s, &s, &s);
    ADD_FAILURE() << "expected a wattmoe::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("multiples of 16"), std::string::npos) << e.what();
  }
  EXPECT_EQ(layer.decode_precision(), ExpertPrecision::Bf16);
}

}  // namespace
}  // namespace wattmoe
