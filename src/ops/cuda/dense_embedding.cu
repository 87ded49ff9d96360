// Embedding lookup on the GPU (dense_ops.h): out[i, :] = table[ids[i], :] (overwrites out).
// Backward dtable[ids[i], :] += dout[i, :] without atomics, deterministic for fp32 and bf16 alike: the ids are
// sorted stably (cub radix sort of (id, i) pairs); pass 1 cuts the sorted positions into fixed chunks of kChunk and,
// per chunk and column, sums each run of equal ids inside the chunk in fp32 (token order), leaving the partial at the
// run's last position in the chunk; pass 2, at each run's last position, adds the partials of the chunks the run
// spans (walking back one chunk at a time) and adds the total to the table row once (one rounding for bf16). The
// order of every sum depends on the ids alone, so runs repeat bit for bit; a frequent id (a space in byte-level
// text: thousands of rows) no longer sums its rows serially in one block. Ids must lie in [0, vocab).
#include <cub/device/device_radix_sort.cuh>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

template <class T>
__global__ void embedding_fwd_kernel(const T* table, const int32_t* ids, T* out, int64_t n, int64_t H) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n * H; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = table[int64_t(ids[e / H]) * H + e % H];
}

__global__ void iota_kernel(int32_t* v, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    v[i] = int32_t(i);
}

constexpr int kChunk = 32;

// Block (c, y): sorted positions [c·kChunk, …) of chunk c, columns y·blockDim.x + threadIdx.x. part[p, j] = the sum
// of dout rows of the run containing p, from max(run start, chunk start) to p, written where p ends the run or the
// chunk (other rows of part are left unwritten and never read).
template <class T>
__global__ void embedding_bwd_chunk_kernel(const int32_t* sorted_ids, const int32_t* order, const T* dout,
                                           float* part, int64_t n, int64_t H) {
  __shared__ int32_t sid[kChunk + 1], sord[kChunk];
  const int64_t p0 = int64_t(blockIdx.x) * kChunk;
  const int len = int(n - p0 < kChunk ? n - p0 : kChunk);
  if (threadIdx.x < len) sid[threadIdx.x] = sorted_ids[p0 + threadIdx.x], sord[threadIdx.x] = order[p0 + threadIdx.x];
  if (threadIdx.x == 0) sid[len] = -1;  // a chunk's end closes its partial sum
  __syncthreads();
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= H) return;
  float acc = 0.f;
  for (int i = 0; i < len; ++i) {
    acc += to_f(dout[int64_t(sord[i]) * H + j]);
    if (sid[i + 1] != sid[i]) {
      part[(p0 + i) * H + j] = acc;
      acc = 0.f;
    }
  }
}

// Block p: if p is the last sorted position of its run, the run's total = part[p] + the partials left at the ends
// of the earlier chunks the run spans, added to its table row once.
template <class T>
__global__ void embedding_bwd_finish_kernel(const int32_t* sorted_ids, const float* part, T* dtable, int64_t n,
                                            int64_t H) {
  const int64_t p = blockIdx.x;
  const int32_t id = sorted_ids[p];
  if (p + 1 < n && sorted_ids[p + 1] == id) return;
  const int64_t first_end = (p / kChunk) * kChunk - 1;  // last position of the chunk before p's
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float s = part[p * H + j];
    for (int64_t q = first_end; q >= 0 && sorted_ids[q] == id; q -= kChunk) s += part[q * H + j];
    T* d = dtable + int64_t(id) * H + j;
    *d = from_f<T>(to_f(*d) + s);
  }
}

}  // namespace

template <class T>
void embedding_fwd(Context& ctx, const T* table, const int32_t* ids, T* out, int64_t n, int64_t H) {
  if (n <= 0 || H <= 0) return;
  embedding_fwd_kernel<T><<<elem_blocks(n * H), 256, 0, ctx.stream()>>>(table, ids, out, n, H);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void embedding_bwd(Context& ctx, const int32_t* ids, const T* dout, T* dtable, int64_t n, int64_t H) {
  if (n <= 0 || H <= 0 || !dtable) return;
  WATTMOE_DENSE_REQUIRE(n <= INT32_MAX, "embedding_bwd: too many tokens");
  cudaStream_t st = ctx.stream();
  Scratch<int32_t> keys(st, size_t(n)), order_in(st, size_t(n)), order(st, size_t(n));
  iota_kernel<<<elem_blocks(n), 256, 0, st>>>(order_in.get(), n);
  WATTMOE_CUDA_LAUNCHED();
  size_t temp_bytes = 0;
  WATTMOE_CUDA_CALL(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, ids, keys.get(), order_in.get(), order.get(),
                                                    int(n), 0, 32, st));
  Scratch<unsigned char> temp(st, temp_bytes);
  WATTMOE_CUDA_CALL(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, ids, keys.get(), order_in.get(),
                                                    order.get(), int(n), 0, 32, st));
  Scratch<float> part(st, size_t(n * H));
  const int threads = H < 128 ? 32 * int((H + 31) / 32) : 128;
  const dim3 grid(unsigned((n + kChunk - 1) / kChunk), unsigned((H + threads - 1) / threads));
  embedding_bwd_chunk_kernel<T><<<grid, threads, 0, st>>>(keys.get(), order.get(), dout, part.get(), n, H);
  WATTMOE_CUDA_LAUNCHED();
  embedding_bwd_finish_kernel<T><<<unsigned(n), row_threads(H), 0, st>>>(keys.get(), part.get(), dtable, n, H);
  WATTMOE_CUDA_LAUNCHED();
}

#define INST(T)                                                                                 \
  template void embedding_fwd<T>(Context&, const T*, const int32_t*, T*, int64_t, int64_t);    \
  template void embedding_bwd<T>(Context&, const int32_t*, const T*, T*, int64_t, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
