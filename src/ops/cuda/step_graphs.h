// A step of GPU work that repeats with the same launches (a decode step of n rows) replayed as a CUDA graph, so that
// the host issues one launch instead of one per kernel.
//
// run(key, stream, body) does body's work on `stream`:
//   - eagerly the first time it meets `key` (so that every buffer the body grows is allocated outside a capture),
//   - the second time: captured into a graph (cudaStreamCaptureModeThreadLocal), instantiated and launched,
//   - after that: the graph is launched and body is not called.
// A graph is replayed only while its key AND allocation_epoch() (ops/cuda/context.h) are those it was captured under;
// otherwise the key starts over (eager, then capture). So the key must name every host-side value whose change alters
// the launches without a DeviceBuffer or PinnedBuffer (re)allocation: sizes, tiers, objects owning raw allocations.
// What the kernels READ from device memory (token ids, positions, cache pointers, routing knobs) may change freely
// between replays: a replay sees the new values.
// The body must be stream work only: no synchronisation, no host read of device results, and no host-side state that
// later code needs (a replay does not run it). If a capture fails anyway (the body did something capture forbids, or
// threw), the reason is kept in stats().failure, the step runs eagerly (where an error of its own throws as usual),
// and this object runs every later step eagerly. Thread-safety: none.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace wattmoe::cuda {

// Captures `work()`'s launches on `stream` into an instantiated graph (the work is not executed). Returns the CUDA
// error of the capture or instantiation (the stream is out of capture mode either way); *exec is set on success only.
// A wattmoe::Error thrown by work ends the capture and propagates.
cudaError_t capture_graph(cudaStream_t stream, const std::function<void()>& work, cudaGraphExec_t* exec);

struct StepGraphStats {
  int64_t eager = 0, captures = 0, replays = 0;  // steps run each way
  std::string failure;                           // why graphs were given up (empty while they work)
};

class StepGraphs {
 public:
  StepGraphs() = default;
  ~StepGraphs() { clear(); }
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  void run(const std::vector<int64_t>& key, cudaStream_t stream, const std::function<void()>& body);
  // Off: every step eager (the graphs are dropped). On again: keys start over.
  void set_enabled(bool on);
  bool enabled() const { return enabled_; }
  void clear();  // drops every graph
  const StepGraphStats& stats() const { return stats_; }

 private:
  struct Entry {
    uint64_t epoch = 0;                // allocation_epoch() after the eager run, or at the capture
    bool warm = false;                 // an eager run happened at `epoch`
    cudaGraphExec_t exec = nullptr;    // captured at `epoch`
  };
  std::map<std::vector<int64_t>, Entry> entries_;
  bool enabled_ = true;
  StepGraphStats stats_;
};

}  // namespace wattmoe::cuda
