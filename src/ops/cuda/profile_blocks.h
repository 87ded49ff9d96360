// The blocks of a transformer layer on the GPU, each runnable on its own, so `wattmoe profile --device cuda` can
// price them (cli/ wires a model's weights in; ops/ knows no model). bf16 storage, fp32 accumulation, HF layouts
// (row-major, linear weights [out, in], y = x·Wᵀ). run() is asynchronous on the stream it is given (default: the
// legacy default stream) and can be captured into a CUDA graph on any other stream (cuBLAS gets a fixed workspace,
// so it allocates nothing during capture); nothing synchronises except where a function says so.
//
//   ExpertBlockCuda     one SwiGLU expert over T tokens: MoeLayerCuda with E = 1, k = 1 (a zero router, so the
//                       routing weight is exactly 1) — the same kernels the full MoE layer runs for each expert.
//                       gate, up [I,H]; down [H,I]; x, out [T,H].
//   RouterBlockCuda     router logits [T,E] (bf16) = x [T,H] · W [E,H]ᵀ: one cuBLAS GEMM.
//   AttentionBlockCuda  q = x·Wqᵀ [T, nh·hd], k = x·Wkᵀ, v = x·Wvᵀ [T, nkv·hd] (cuBLAS); k, v repeated to nh heads
//                       (GQA: head h reads kv head h / (nh / nkv)); per head scores = q·kᵀ / √hd in fp32 (one
//                       strided-batched GEMM), causal softmax to bf16 probabilities (query t sees keys 0..t; our
//                       kernel), attn = P·v (batched GEMM), out = attn·Woᵀ [T,H]. No RoPE or norms: they are
//                       elementwise and small beside the GEMMs this block is for. Scratch: nh·T² fp32 + bf16.
//
// This header pulls in no CUDA header (like ops/moe_cuda.h); the definitions exist only in the CUDA build.
#pragma once
#if !defined(WATTMOE_WITH_CUDA) || !WATTMOE_WITH_CUDA
#error "ops/cuda/profile_blocks.h needs the CUDA backend: configure with -DWATTMOE_CUDA=ON"
#endif

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;  // the CUDA runtime's own declaration, repeated

namespace wattmoe {

class MoeLayerCuda;

// cudaDeviceSynchronize; Error naming the failure (a kernel fault surfaces here).
void cuda_synchronize();
// "NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB)" for the current device; Error without a usable GPU.
std::string cuda_device_description();

// Device memory owned by one object (cudaMalloc / cudaFree). Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);  // Error naming the size when the allocation fails
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// n bf16 values uniform in ±√3·stddev (so with that standard deviation) from a counter hash of (seed, index):
// gigabytes in milliseconds, the same values on every GPU. Asynchronous.
void fill_uniform_bf16(void* dev, size_t n, double stddev, uint64_t seed);
// Host fp32 → device bf16 (round to nearest even). Synchronous.
void upload_bf16(void* dev, const float* host, size_t n);
// Device → host copy of n bytes. Synchronous.
void download(void* host, const void* dev, size_t bytes);

// An NVTX range for Nsight Systems / Compute, open while the object lives.
class NvtxScope {
 public:
  explicit NvtxScope(const std::string& name);
  ~NvtxScope();
  NvtxScope(const NvtxScope&) = delete;
  NvtxScope& operator=(const NvtxScope&) = delete;
};

class ExpertBlockCuda {
 public:
  ExpertBlockCuda(int hidden, int intermediate, int max_tokens);  // H, I multiples of 8
  ~ExpertBlockCuda();
  void run(const void* gate, const void* up, const void* down, const void* x, void* out, int T,
           cudaStream_t s = nullptr);

 private:
  int hidden_;
  std::unique_ptr<MoeLayerCuda> layer_;
  DeviceBuffer router_;  // [1,H] zeros
};

class RouterBlockCuda {
 public:
  RouterBlockCuda(int hidden, int experts, int max_tokens);
  ~RouterBlockCuda();
  void run(const void* w, const void* x, void* logits, int T, cudaStream_t s = nullptr);

 private:
  int hidden_, experts_, max_tokens_;
  void* blas_ = nullptr;  // cublasHandle_t
  DeviceBuffer blas_ws_;
};

struct AttentionShape {
  int hidden = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int q_dim() const { return heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
};

class AttentionBlockCuda {
 public:
  AttentionBlockCuda(const AttentionShape& s, int max_tokens);
  ~AttentionBlockCuda();
  // wq [nh·hd, H], wk, wv [nkv·hd, H], wo [H, nh·hd]; x, out [T,H].
  void run(const void* wq, const void* wk, const void* wv, const void* wo, const void* x, void* out, int T,
           cudaStream_t s = nullptr);
  // The last run's intermediates (bf16, device): q [T, nh·hd], k, v [T, nkv·hd], attn [T, nh·hd].
  const void* q() const { return q_.get(); }
  const void* k() const { return k_.get(); }
  const void* v() const { return v_.get(); }
  const void* attn() const { return attn_.get(); }

 private:
  AttentionShape s_;
  int max_tokens_;
  void* blas_ = nullptr;
  DeviceBuffer blas_ws_, q_, k_, v_, kx_, vx_, attn_, scores_, probs_;
};

// A stream of our own, and `calls` back-to-back calls of some work captured on it as one CUDA graph: replaying the
// graph runs them with no host launch gaps, so a small block is measured by what the GPU spends on it rather than by
// how fast the host can launch it (a 10 µs router GEMM otherwise idles the GPU between launches).
class CudaStream {
 public:
  CudaStream();  // non-blocking
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class CudaGraphRun {
 public:
  // Runs `work(stream)` once eagerly (so libraries allocate what they need outside the capture), then captures it
  // `calls` times into a graph.
  CudaGraphRun(const std::function<void(cudaStream_t)>& work, int calls, cudaStream_t stream);
  ~CudaGraphRun();
  CudaGraphRun(const CudaGraphRun&) = delete;
  CudaGraphRun& operator=(const CudaGraphRun&) = delete;
  void launch();  // asynchronous on the stream

 private:
  cudaStream_t stream_;
  void* exec_ = nullptr;   // cudaGraphExec_t
};

namespace cuda {
// Kernels of the attention block (profile_blocks.cu), asynchronous on `s`.
// probs[h,t,j] = softmax over j <= t of scores[h,t,:] (fp32, already scaled), 0 for j > t; rows = heads·T.
void launch_causal_softmax(const float* scores, void* probs_bf16, int rows, int T, cudaStream_t s);
// dst[t, h·hd + d] = src[t, (h / (nh / nkv))·hd + d] (bf16), t < T.
void launch_repeat_kv(const void* src, void* dst, int T, int heads, int kv_heads, int head_dim, cudaStream_t s);
void launch_fill_uniform_bf16(void* dev, size_t n, float half_width, uint64_t seed, cudaStream_t s);
}  // namespace cuda

}  // namespace wattmoe
