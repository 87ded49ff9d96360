// A fixed pool of worker threads and a blocking parallel_for over [0, n) in contiguous chunks.
// Chunking depends only on n and the thread count, so results that do not reduce across chunks are
// bitwise reproducible.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wattmoe {

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 0);  // 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // fn(begin, end) on disjoint chunks; the calling thread takes part. Blocks until all are done.
  // If another thread is already running a parallel_for on this pool, the call runs fn(0, n) inline instead
  // (so code running on several threads of its own may still call it safely).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

 private:
  void worker(int id);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::atomic<bool> busy_{false};
};

// The process-wide pool used by CPU ops (created on first use; size from WATTMOE_THREADS or the core count).
ThreadPool& default_pool();

}  // namespace wattmoe
