// Context (device, stream, cuBLAS handle), cuBLAS errors, device detection and the RoPE table upload.
#include "ops/cuda/context.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

void cublas_fail(cublasStatus_t s, const char* call, const char* file, int line) {
  throw Error(std::string(file) + ":" + std::to_string(line) + ": cuBLAS error " + cublasGetStatusName(s) + " (" +
              cublasGetStatusString(s) + ") in " + call);
}

[[noreturn]] void dense_fail(const char* msg);  // declared for the kernels in dense_common.cuh
void dense_fail(const char* msg) { throw Error(std::string("CUDA dense op: ") + msg); }

Context::Context(int device) : device_(device) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || device < 0 || device >= n) {
    cudaGetLastError();  // clear the sticky "no device" error
    fail("CUDA device {} not available ({} device(s) found)", device, n);
  }
  WATTMOE_CUDA_CALL(cudaSetDevice(device));
  WATTMOE_CUDA_CALL(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  WATTMOE_CUBLAS_CALL(cublasCreate(&blas_));
  WATTMOE_CUBLAS_CALL(cublasSetStream(blas_, stream_));
  // Default math: no TF32 (fp32 GEMMs also ask for CUBLAS_COMPUTE_32F_PEDANTIC), bf16 accumulates in fp32.
  WATTMOE_CUBLAS_CALL(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
}

Context::~Context() {
  if (blas_) cublasDestroy(blas_);
  if (stream_) cudaStreamDestroy(stream_);
}

void Context::sync() const { WATTMOE_CUDA_CALL(cudaStreamSynchronize(stream_)); }

bool device_available() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

void DeviceRope::upload(Context& ctx, const ops::RopeTable& t) {
  pos0 = t.pos0, n_pos = t.n_pos, half = t.half;
  // The CPU op rounds each double entry to T (float) before use; the same rounding here gives the same bits.
  std::vector<float> c(t.cos.begin(), t.cos.end()), s(t.sin.begin(), t.sin.end());
  cos.upload(c, ctx.stream());
  sin.upload(s, ctx.stream());
  ctx.sync();  // the host vectors die here
}

}  // namespace wattmoe::cuda
