// Host side of the profiling blocks (ops/cuda/profile_blocks.h): device buffers, bf16 upload, NVTX ranges, and the
// expert / router / attention blocks on MoeLayerCuda and cuBLAS.
#include "ops/cuda/profile_blocks.h"

#include <cublas_v2.h>
#include <nvtx3/nvToolsExt.h>

#include <cmath>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/cuda/moe_kernels.h"
#include "ops/cuda/step_graphs.h"
#include "ops/moe_cuda.h"

namespace wattmoe {

namespace {

void blas_check(cublasStatus_t st, const char* call) {
  WATTMOE_REQUIRE(st == CUBLAS_STATUS_SUCCESS, "cuBLAS error {} ({}) in {}", int(st), cublasGetStatusString(st), call);
}
#define WATTMOE_CUBLAS(call) blas_check((call), #call)

constexpr size_t kBlasWorkspace = size_t(32) << 20;  // cuBLAS's own default for Hopper

// A handle with a fixed workspace (no allocation inside a graph capture).
cublasHandle_t make_handle(DeviceBuffer& ws) {
  cublasHandle_t h = nullptr;
  WATTMOE_CUBLAS(cublasCreate(&h));
  ws = DeviceBuffer(kBlasWorkspace);
  WATTMOE_CUBLAS(cublasSetWorkspace(h, ws.get(), ws.bytes()));
  return h;
}

// Row-major C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C, batched with element strides; bf16 A and B, fp32
// accumulation, C bf16 or fp32. cuBLAS is column-major: a row-major X is its column-major transpose, so this is
// the column-major Cᵀ = op(B)ᵀ · op(A)ᵀ.
void gemm_rm(cublasHandle_t h, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void* A, int lda,
             long long stride_a, const void* B, int ldb, long long stride_b, float beta, void* C, cudaDataType c_type,
             int ldc, long long stride_c, int batch) {
  WATTMOE_CUBLAS(cublasGemmStridedBatchedEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            N, M, K, &alpha, B, CUDA_R_16BF, ldb, stride_b, A, CUDA_R_16BF, lda,
                                            stride_a, &beta, C, c_type, ldc, stride_c, batch, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
}

// y[T,out] = x[T,in] · W[out,in]ᵀ, bf16.
void linear(cublasHandle_t h, const void* x, const void* W, void* y, int T, int in, int out) {
  gemm_rm(h, false, true, T, out, in, 1.f, x, in, 0, W, in, 0, 0.f, y, CUDA_R_16BF, out, 0, 1);
}

}  // namespace

void cuda_synchronize() { WATTMOE_CUDA_CALL(cudaDeviceSynchronize()); }

std::string cuda_device_description() {
  int dev = 0;
  WATTMOE_CUDA_CALL(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  WATTMOE_CUDA_CALL(cudaGetDeviceProperties(&p, dev));
  return fmt::format("{} (sm_{}{}, {:.1f} GiB)", p.name, p.major, p.minor, double(p.totalGlobalMem) / (1 << 30));
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t e = cudaMalloc(&p_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky: clear it so later calls do not report it
    p_ = nullptr;
    fail("cudaMalloc of {:.1f} MiB failed: {} (the model or --max-tokens does not fit on this GPU)",
         double(bytes) / (1 << 20), cudaGetErrorString(e));
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (p_) cudaFree(p_);
    p_ = std::exchange(o.p_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void fill_uniform_bf16(void* dev, size_t n, double stddev, uint64_t seed) {
  cuda::launch_fill_uniform_bf16(dev, n, float(stddev * std::sqrt(3.0)), seed, nullptr);
}

void upload_bf16(void* dev, const float* host, size_t n) {
  std::vector<uint16_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = f32_to_bf16(host[i]);
  WATTMOE_CUDA_CALL(cudaMemcpy(dev, b.data(), n * 2, cudaMemcpyHostToDevice));
}

void download(void* host, const void* dev, size_t bytes) {
  WATTMOE_CUDA_CALL(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
}

NvtxScope::NvtxScope(const std::string& name) { nvtxRangePushA(name.c_str()); }
NvtxScope::~NvtxScope() { nvtxRangePop(); }

// ---- expert ----

ExpertBlockCuda::ExpertBlockCuda(int hidden, int intermediate, int max_tokens)
    : hidden_(hidden), router_(size_t(hidden) * 2) {
  MoeCudaOptions opt;
  opt.name = "expert";
  layer_ = std::make_unique<MoeLayerCuda>(MoeShape{hidden, intermediate, 1, 1, true}, max_tokens, opt);
  WATTMOE_CUDA_CALL(cudaMemset(router_.get(), 0, router_.bytes()));
}

ExpertBlockCuda::~ExpertBlockCuda() = default;

void ExpertBlockCuda::run(const void* gate, const void* up, const void* down, const void* x, void* out, int T,
                          cudaStream_t s) {
  layer_->use_device_weights(router_.get(), gate, up, down);
  layer_->forward(x, out, T, s);
}

// ---- router ----

RouterBlockCuda::RouterBlockCuda(int hidden, int experts, int max_tokens)
    : hidden_(hidden), experts_(experts), max_tokens_(max_tokens) {
  WATTMOE_REQUIRE(hidden > 0 && experts > 0 && max_tokens > 0,
                  "RouterBlockCuda: hidden {}, experts {}, max_tokens {}: expected > 0", hidden, experts, max_tokens);
  blas_ = make_handle(blas_ws_);
}

RouterBlockCuda::~RouterBlockCuda() { cublasDestroy(static_cast<cublasHandle_t>(blas_)); }

void RouterBlockCuda::run(const void* w, const void* x, void* logits, int T, cudaStream_t s) {
  WATTMOE_REQUIRE(T >= 1 && T <= max_tokens_, "RouterBlockCuda: T={} outside 1..{}", T, max_tokens_);
  auto h = static_cast<cublasHandle_t>(blas_);
  WATTMOE_CUBLAS(cublasSetStream(h, s));
  linear(h, x, w, logits, T, hidden_, experts_);
}

// ---- attention ----

AttentionBlockCuda::AttentionBlockCuda(const AttentionShape& s, int max_tokens) : s_(s), max_tokens_(max_tokens) {
  WATTMOE_REQUIRE(s.hidden > 0 && s.heads > 0 && s.kv_heads > 0 && s.head_dim > 0 && s.heads % s.kv_heads == 0,
                  "AttentionBlockCuda: hidden {}, heads {}, kv_heads {}, head_dim {}: expected > 0 and heads a "
                  "multiple of kv_heads", s.hidden, s.heads, s.kv_heads, s.head_dim);
  WATTMOE_REQUIRE(max_tokens > 0, "AttentionBlockCuda: max_tokens {}: expected > 0", max_tokens);
  const size_t T = size_t(max_tokens), qd = size_t(s.q_dim()), kvd = size_t(s.kv_dim());
  q_ = DeviceBuffer(T * qd * 2);
  k_ = DeviceBuffer(T * kvd * 2);
  v_ = DeviceBuffer(T * kvd * 2);
  kx_ = DeviceBuffer(T * qd * 2);
  vx_ = DeviceBuffer(T * qd * 2);
  attn_ = DeviceBuffer(T * qd * 2);
  scores_ = DeviceBuffer(size_t(s.heads) * T * T * 4);
  probs_ = DeviceBuffer(size_t(s.heads) * T * T * 2);
  blas_ = make_handle(blas_ws_);
}

AttentionBlockCuda::~AttentionBlockCuda() { cublasDestroy(static_cast<cublasHandle_t>(blas_)); }

void AttentionBlockCuda::run(const void* wq, const void* wk, const void* wv, const void* wo, const void* x, void* out,
                             int T, cudaStream_t stream) {
  WATTMOE_REQUIRE(T >= 1 && T <= max_tokens_, "AttentionBlockCuda: T={} outside 1..{}", T, max_tokens_);
  auto h = static_cast<cublasHandle_t>(blas_);
  WATTMOE_CUBLAS(cublasSetStream(h, stream));
  const int H = s_.hidden, qd = s_.q_dim(), kvd = s_.kv_dim(), hd = s_.head_dim, nh = s_.heads;
  linear(h, x, wq, q_.get(), T, H, qd);
  linear(h, x, wk, k_.get(), T, H, kvd);
  linear(h, x, wv, v_.get(), T, H, kvd);
  const void* kk = k_.get();
  const void* vv = v_.get();
  if (s_.kv_heads != nh) {
    cuda::launch_repeat_kv(k_.get(), kx_.get(), T, nh, s_.kv_heads, hd, stream);
    cuda::launch_repeat_kv(v_.get(), vx_.get(), T, nh, s_.kv_heads, hd, stream);
    kk = kx_.get(), vv = vx_.get();
  }
  const long long TT = (long long)T * T;
  // scores[h] [T,T] = q_h · k_hᵀ / √hd; head h's columns start at h·hd in rows of qd.
  gemm_rm(h, false, true, T, T, hd, 1.f / std::sqrt(float(hd)), q_.get(), qd, hd, kk, qd, hd, 0.f, scores_.get(),
          CUDA_R_32F, T, TT, nh);
  cuda::launch_causal_softmax(static_cast<const float*>(scores_.get()), probs_.get(), nh * T, T, stream);
  // attn_h [T,hd] = P_h [T,T] · v_h [T,hd], written into attn's columns h·hd.
  gemm_rm(h, false, false, T, hd, T, 1.f, probs_.get(), T, TT, vv, qd, hd, 0.f, attn_.get(), CUDA_R_16BF, qd, hd, nh);
  linear(h, attn_.get(), wo, out, T, qd, H);
}

// ---- streams and graphs ----

CudaStream::CudaStream() { WATTMOE_CUDA_CALL(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
CudaStream::~CudaStream() { cudaStreamDestroy(s_); }

CudaGraphRun::CudaGraphRun(const std::function<void(cudaStream_t)>& work, int calls, cudaStream_t stream)
    : stream_(stream) {
  WATTMOE_REQUIRE(calls >= 1, "CudaGraphRun: calls {}: expected >= 1", calls);
  WATTMOE_REQUIRE(stream != nullptr, "CudaGraphRun: capture needs a stream of its own, not the default stream");
  work(stream);
  WATTMOE_CUDA_CALL(cudaStreamSynchronize(stream));
  cudaGraphExec_t e = nullptr;
  WATTMOE_CUDA_CALL(cuda::capture_graph(
      stream,
      [&] {
        for (int i = 0; i < calls; ++i) work(stream);
      },
      &e));
  exec_ = e;
}

CudaGraphRun::~CudaGraphRun() {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
}

void CudaGraphRun::launch() { WATTMOE_CUDA_CALL(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream_)); }

}  // namespace wattmoe
