// What every host-side CUDA op needs: the device, one stream, a cuBLAS handle on that stream, device buffers, and
// page-locked host buffers.
// Ops take a Context& and launch asynchronously on its stream; nothing here synchronises unless it says so.
// fp32 GEMMs run in true fp32 (no TF32), so that fp32 results can be compared with the CPU reference closely.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ops/cuda/moe_kernels.h"  // bf16, WATTMOE_CUDA_CALL, cuda_fail

namespace wattmoe::cuda {

[[noreturn]] void cublas_fail(cublasStatus_t s, const char* call, const char* file, int line);
#define WATTMOE_CUBLAS_CALL(call)                                                             \
  do {                                                                                        \
    cublasStatus_t s_ = (call);                                                               \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::wattmoe::cuda::cublas_fail(s_, #call, __FILE__, __LINE__); \
  } while (0)

class Context {
 public:
  explicit Context(int device = 0);  // throws wattmoe::Error when there is no such device
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  int device() const { return device_; }
  void sync() const;  // waits for the stream

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
};

// Whether a CUDA device is present (false, not an error, on a machine without a driver or GPU).
bool device_available();

// How many times a DeviceBuffer or PinnedBuffer in this process has taken or given back memory. A captured CUDA
// graph bakes those buffers' addresses in (ops/cuda/step_graphs.h): it is replayed only while this count stands still.
inline std::atomic<uint64_t>& allocation_count() {
  static std::atomic<uint64_t> n{0};
  return n;
}
inline uint64_t allocation_epoch() { return allocation_count().load(std::memory_order_relaxed); }

// Owning device array of n elements of T (uninitialised). Moves, never copies.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_), cap_(o.cap_) { o.p_ = nullptr, o.n_ = o.cap_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) release(), p_ = o.p_, n_ = o.n_, cap_ = o.cap_, o.p_ = nullptr, o.n_ = o.cap_ = 0;
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Reallocates only when growing past the capacity; contents are not kept.
  void resize(size_t n) {
    if (n > cap_) {
      release();
      WATTMOE_CUDA_CALL(cudaMalloc(&p_, n * sizeof(T)));
      cap_ = n;
      ++allocation_count();
    }
    n_ = n;
  }
  void zero(cudaStream_t s) {
    if (n_) WATTMOE_CUDA_CALL(cudaMemsetAsync(p_, 0, n_ * sizeof(T), s));
  }
  void upload(const T* host, size_t n, cudaStream_t s) {  // resizes to n; host memory must outlive the copy
    resize(n);
    if (n) WATTMOE_CUDA_CALL(cudaMemcpyAsync(p_, host, n * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  void upload(const std::vector<T>& host, cudaStream_t s) { upload(host.data(), host.size(), s); }
  std::vector<T> download(cudaStream_t s) const {  // synchronises the stream
    std::vector<T> h;
    download(h, s);
    return h;
  }
  // Into `h` (resized to size()): its storage, and so pointers into it, stay put while its capacity suffices.
  void download(std::vector<T>& h, cudaStream_t s) const {  // synchronises the stream
    h.resize(n_);
    if (n_) WATTMOE_CUDA_CALL(cudaMemcpyAsync(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost, s));
    WATTMOE_CUDA_CALL(cudaStreamSynchronize(s));
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }

 private:
  void release() {
    if (p_) cudaFree(p_), ++allocation_count();
    p_ = nullptr, n_ = 0, cap_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

// Page-locked host array (cudaMallocHost), so that a device-to-host copy into it does not block the host.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  // Reallocates only when growing; contents are not kept. The caller makes sure no copy into it is in flight.
  void resize(size_t n) {
    if (n > cap_) {
      release();
      WATTMOE_CUDA_CALL(cudaMallocHost(reinterpret_cast<void**>(&p_), n * sizeof(T)));
      cap_ = n;
      ++allocation_count();
    }
    n_ = n;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (p_) cudaFreeHost(p_), ++allocation_count();
    p_ = nullptr, n_ = cap_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

}  // namespace wattmoe::cuda
