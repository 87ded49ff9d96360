// StepGraphs (ops/cuda/step_graphs.h): eager, then captured, then replayed, per key and allocation epoch.
#include "ops/cuda/step_graphs.h"

#include <exception>
#include <string>

#include "ops/cuda/context.h"

namespace wattmoe::cuda {

cudaError_t capture_graph(cudaStream_t stream, const std::function<void()>& work, cudaGraphExec_t* exec) {
  cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) return e;
  cudaGraph_t g = nullptr;
  try {
    work();
  } catch (...) {
    cudaStreamEndCapture(stream, &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();  // the capture's own error, if the work broke it
    throw;
  }
  e = cudaStreamEndCapture(stream, &g);
  if (e == cudaSuccess) {
    cudaGraphExec_t x = nullptr;
    e = cudaGraphInstantiate(&x, g, 0);
    if (e == cudaSuccess) *exec = x;
  }
  if (g) cudaGraphDestroy(g);
  if (e != cudaSuccess) cudaGetLastError();  // not sticky: leave no error for the next call to find
  return e;
}

void StepGraphs::run(const std::vector<int64_t>& key, cudaStream_t stream, const std::function<void()>& body) {
  if (!enabled_ || !stats_.failure.empty()) {
    body();
    ++stats_.eager;
    return;
  }
  Entry& e = entries_[key];
  const uint64_t now = allocation_epoch();
  if (e.exec && e.epoch == now) {
    WATTMOE_CUDA_CALL(cudaGraphLaunch(e.exec, stream));
    ++stats_.replays;
    return;
  }
  if (e.exec) cudaGraphExecDestroy(e.exec), e.exec = nullptr;  // captured under other allocations
  if (!e.warm || e.epoch != now) {
    body();
    ++stats_.eager;
    e.warm = true, e.epoch = allocation_epoch();  // after what the body allocated
    return;
  }
  cudaGraphExec_t exec = nullptr;
  std::string why;
  try {
    const cudaError_t err = capture_graph(stream, body, &exec);
    if (err != cudaSuccess) why = std::string("capture failed: ") + cudaGetErrorString(err);
    else if (allocation_epoch() != now) why = "the step allocated memory while being captured";
  } catch (const std::exception& x) {
    why = std::string("capture failed: ") + x.what();
  }
  if (!why.empty()) {
    if (exec) cudaGraphExecDestroy(exec);
    stats_.failure = why;
    clear();
    body();  // eagerly: an error of the step itself shows here
    ++stats_.eager;
    return;
  }
  e.exec = exec;
  WATTMOE_CUDA_CALL(cudaGraphLaunch(exec, stream));
  ++stats_.captures;
}

void StepGraphs::set_enabled(bool on) {
  if (!on) clear();
  enabled_ = on;
}

void StepGraphs::clear() {
  for (auto& [key, e] : entries_)
    if (e.exec) cudaGraphExecDestroy(e.exec);
  entries_.clear();
}

}  // namespace wattmoe::cuda
