// Times causal GQA attention forward (bf16) on one GPU, without saved probabilities (inference): the materialised
// path (cuda::attention_fwd with probs null: cuBLAS scores, softmax kernel, cuBLAS P·V) against the flash forward
// (cuda::attention_fwd_flash), on the same random inputs, and prints one JSON line per (T, implementation) plus one
// {"ratio":...} line per T (materialised ms / flash ms; > 1: flash is faster) with the largest |difference| of their
// outputs. Time: CUDA events around each call, median of --reps after 3 warm-ups. TFLOP/s counts the causal half:
// 2·2·batch·heads·hd·T(T+1)/2 multiply-adds.
//
//   attention_bench [--tokens 128,512,1024,2048,4096] [--heads 8 --kv-heads 8 --hd 64] [--batch-tokens 16384]
//                   [--reps 20]
// --batch-tokens: sequences per call = max(1, batch-tokens / T), so every T processes about as many queries.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "ops/cuda/context.h"
#include "ops/cuda/dense_ops.h"
#include "ops/cuda/profile_blocks.h"  // fill_uniform_bf16

using namespace wattmoe;

namespace {

template <class F>
double median_ms(cuda::Context& ctx, int reps, F&& f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) f();
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, ctx.stream());
    f();
    cudaEventRecord(b, ctx.stream());
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a), cudaEventDestroy(b);
  return median(ms);
}

float bf16_bits_to_float(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> tokens = {128, 512, 1024, 2048, 4096};
  int heads = 8, kv_heads = 8, hd = 64, batch_tokens = 16384, reps = 20;
  for (int i = 1; i < argc; ++i) {
    auto is = [&](const char* f) { return std::strcmp(argv[i], f) == 0 && i + 1 < argc; };
    if (std::strcmp(argv[i], "--help") == 0) {
      std::printf("attention_bench [--tokens 128,512,...] [--heads N --kv-heads N --hd N] [--batch-tokens N] "
                  "[--reps N]\n");
      return 0;
    } else if (is("--tokens")) tokens = parse_list(argv[++i]);
    else if (is("--heads")) heads = std::atoi(argv[++i]);
    else if (is("--kv-heads")) kv_heads = std::atoi(argv[++i]);
    else if (is("--hd")) hd = std::atoi(argv[++i]);
    else if (is("--batch-tokens")) batch_tokens = std::atoi(argv[++i]);
    else if (is("--reps")) reps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "attention_bench: unknown or incomplete argument %s (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (heads <= 0 || kv_heads <= 0 || heads % kv_heads || hd <= 0 || reps <= 0 || tokens.empty()) {
    std::fprintf(stderr, "attention_bench: heads must be a positive multiple of kv-heads; hd, reps positive\n");
    return 2;
  }
  try {
    cuda::Context ctx(0);
    std::printf("{\"device\":\"%s\",\"heads\":%d,\"kv_heads\":%d,\"hd\":%d}\n", cuda_device_description().c_str(),
                heads, kv_heads, hd);
    for (int T : tokens) {
      const int64_t B = std::max<int64_t>(1, batch_tokens / T), qd = int64_t(heads) * hd, kvd = int64_t(kv_heads) * hd;
      const ops::AttnShape s{T, T, 0, heads, kv_heads, hd, qd, kvd};
      if (!cuda::flash_attention_supported(s)) {
        std::fprintf(stderr, "attention_bench: hd %d is not a shape the flash forward takes\n", hd);
        return 2;
      }
      cuda::DeviceBuffer<cuda::bf16> q(size_t(B * T * qd)), k(size_t(B * T * kvd)), v(size_t(B * T * kvd)),
          o1(size_t(B * T * qd)), o2(size_t(B * T * qd));
      fill_uniform_bf16(q.data(), q.size(), 1.0, 1), fill_uniform_bf16(k.data(), k.size(), 1.0, 2);
      fill_uniform_bf16(v.data(), v.size(), 1.0, 3);
      const double flop = 4.0 * double(B) * heads * hd * double(T) * (T + 1) / 2;
      const double ms_mat = median_ms(ctx, reps, [&] {
        cuda::attention_fwd<cuda::bf16>(ctx, q.data(), k.data(), v.data(), o1.data(), nullptr, s, B);
      });
      const double ms_flash = median_ms(ctx, reps, [&] {
        cuda::attention_fwd_flash(ctx, q.data(), k.data(), v.data(), o2.data(), s, B);
      });
      ctx.sync();
      std::vector<uint16_t> h1(o1.size()), h2(o2.size());
      cudaMemcpy(h1.data(), o1.data(), 2 * h1.size(), cudaMemcpyDeviceToHost);
      cudaMemcpy(h2.data(), o2.data(), 2 * h2.size(), cudaMemcpyDeviceToHost);
      double maxdiff = 0;
      bool finite = true;
      for (size_t i = 0; i < h1.size(); ++i) {
        const float a = bf16_bits_to_float(h1[i]), b = bf16_bits_to_float(h2[i]);
        finite = finite && std::isfinite(b);
        maxdiff = std::max(maxdiff, double(std::fabs(a - b)));
      }
      for (auto [name, ms] : {std::pair{"materialised", ms_mat}, std::pair{"flash", ms_flash}})
        std::printf("{\"impl\":\"%s\",\"T\":%d,\"batch\":%lld,\"ms\":%.4f,\"tflops\":%.1f}\n", name, T,
                    (long long)B, ms, flop / ms * 1e-9);
      std::printf("{\"ratio\":{\"T\":%d,\"materialised_over_flash\":%.3f,\"max_abs_diff\":%.3g,\"finite\":%s}}\n", T,
                  ms_mat / ms_flash, maxdiff, finite ? "true" : "false");
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
