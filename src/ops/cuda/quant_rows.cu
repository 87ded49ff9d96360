// Weight-only quantisation on the GPU (quant_rows.h). One block per row (grid-stride over rows, gridDim.y = job):
// the row's amax by a block reduction, then each thread encodes and dequantises its columns.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "ops/cuda/quant_rows.h"

namespace wattmoe::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxJobsPerLaunch = 65535;  // gridDim.y
constexpr int64_t kMaxRowBlocks = 4096;

// The block's maximum of v (every thread gets it); `red` holds kThreads / 32 floats.
__device__ float block_max(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // the previous row's reads of red are done
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < kThreads / 32; ++w) v = fmaxf(v, red[w]);
  return v;
}

__global__ void nonfinite_kernel(const QuantRowsJob* jobs, unsigned long long* first) {
  const QuantRowsJob j = jobs[blockIdx.y];
  for (int64_t r = blockIdx.x; r < j.rows; r += gridDim.x) {
    bool bad = false;
    for (int64_t c = threadIdx.x; c < j.cols; c += blockDim.x) bad |= !isfinite(j.w[r * j.cols + c]);
    if (__syncthreads_or(bad) && threadIdx.x == 0) atomicMin(&first[blockIdx.y], (unsigned long long)r);
  }
}

template <ops::ExpertPrecision P>
__global__ void __launch_bounds__(kThreads) fake_quantise_kernel(const QuantRowsJob* jobs) {
  __shared__ float red[kThreads / 32];
  const QuantRowsJob j = jobs[blockIdx.y];
  for (int64_t r = blockIdx.x; r < j.rows; r += gridDim.x) {
    float* row = j.w + r * j.cols;
    float amax = 0.f;
    bool finite = true;
    for (int64_t c = threadIdx.x; c < j.cols; c += kThreads) {
      const float x = row[c];
      finite &= isfinite(x);
      amax = fmaxf(amax, fabsf(x));
    }
    if (!__syncthreads_and(finite)) continue;  // the caller checked first; nothing is written for such a row
    amax = block_max(amax, red);
    const float s = amax == 0.f ? 1.f : amax / (P == ops::ExpertPrecision::Fp8 ? 448.f : 127.f);
    if (j.scales && threadIdx.x == 0) j.scales[r] = s;
    for (int64_t c = threadIdx.x; c < j.cols; c += kThreads) {
      const float v = row[c] / s;
      uint8_t code;
      float q;
      if constexpr (P == ops::ExpertPrecision::Fp8) {
        code = __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
        q = __half2float(__half(__nv_cvt_fp8_to_halfraw(code, __NV_E4M3)));
      } else {
        code = uint8_t(int8_t(rintf(fminf(fmaxf(v, -127.f), 127.f))));  // round half to even (the default rounding)
        q = float(int8_t(code));  // from the code, as the reference dequantises: -0 comes back +0
      }
      if (j.codes) j.codes[r * j.cols + c] = code;
      row[c] = q * s;
    }
  }
}

// Runs `launch(jobs on the device, count, row blocks)` over chunks of at most kMaxJobsPerLaunch jobs.
template <class Launch>
void over_chunks(Context& ctx, const std::vector<QuantRowsJob>& jobs, DeviceBuffer<QuantRowsJob>& d, Launch launch) {
  d.upload(jobs, ctx.stream());
  for (size_t j0 = 0; j0 < jobs.size(); j0 += kMaxJobsPerLaunch) {
    const size_t n = std::min(jobs.size() - j0, size_t(kMaxJobsPerLaunch));
    int64_t rows = 1;
    for (size_t j = j0; j < j0 + n; ++j) rows = std::max(rows, jobs[j].rows);
    launch(d.data() + j0, j0, dim3(unsigned(std::min(rows, kMaxRowBlocks)), unsigned(n)));
    WATTMOE_CUDA_CALL(cudaGetLastError());
  }
}

}  // namespace

std::vector<int64_t> first_nonfinite_rows(Context& ctx, const std::vector<QuantRowsJob>& jobs) {
  DeviceBuffer<QuantRowsJob> d;
  DeviceBuffer<unsigned long long> first(jobs.size());
  if (!jobs.empty()) WATTMOE_CUDA_CALL(cudaMemsetAsync(first.data(), 0xFF, jobs.size() * 8, ctx.stream()));
  over_chunks(ctx, jobs, d, [&](const QuantRowsJob* dj, size_t j0, dim3 grid) {
    nonfinite_kernel<<<grid, kThreads, 0, ctx.stream()>>>(dj, first.data() + j0);
  });
  const std::vector<unsigned long long> h = first.download(ctx.stream());
  std::vector<int64_t> out(h.size());
  for (size_t i = 0; i < h.size(); ++i) out[i] = h[i] == ULLONG_MAX ? -1 : int64_t(h[i]);
  return out;
}

void fake_quantise_rows(Context& ctx, const std::vector<QuantRowsJob>& jobs, ops::ExpertPrecision p) {
  if (p == ops::ExpertPrecision::Bf16 || jobs.empty()) return;
  DeviceBuffer<QuantRowsJob> d;
  over_chunks(ctx, jobs, d, [&](const QuantRowsJob* dj, size_t, dim3 grid) {
    if (p == ops::ExpertPrecision::Fp8)
      fake_quantise_kernel<ops::ExpertPrecision::Fp8><<<grid, kThreads, 0, ctx.stream()>>>(dj);
    else
      fake_quantise_kernel<ops::ExpertPrecision::Int8><<<grid, kThreads, 0, ctx.stream()>>>(dj);
  });
  ctx.sync();  // the job list goes with `d`
}

}  // namespace wattmoe::cuda
