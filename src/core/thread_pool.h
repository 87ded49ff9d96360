// A fixed pool of worker threads: a blocking parallel_for over [0, n) in contiguous chunks, and run_tasks over n
// independent tasks claimed one at a time (dynamic load balance).
//
// Reproducibility: the pool never decides what is computed, only which thread computes it. parallel_for's chunks
// depend on n and the thread count, so use it only where chunks do not reduce into each other (row-wise ops);
// run_tasks' tasks are fixed by the caller (their number and contents must not depend on the thread count), so any
// work split into tasks gives bitwise the same result on 1 or N threads.
//
// Workers spin briefly after each job before sleeping, so that the many short parallel regions of one training step
// do not each pay a thread wake-up.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
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
  // Runs inline (fn(0, n)) when fewer than 2 chunks of min_chunk fit, or when the pool is already running a job:
  // code running on the pool's threads (or on several threads of its own) may call it safely.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);
  // fn(i) for every i in [0, n), each task on whichever thread claims it next; the calling thread takes part.
  // Blocks until all are done; inline (in index order) when the pool is busy or has one thread.
  // In both calls an exception thrown by fn on any thread is rethrown here once all threads are done (the first
  // one, when several throw; work not yet started may be skipped); the pool stays usable.
  void run_tasks(int64_t n, const std::function<void(int64_t)>& fn);
  // Whether a job is running now (a call made now would run inline): callers use it to skip splitting work that
  // would then run on one thread anyway.
  bool busy() const { return busy_.load(std::memory_order_relaxed); }

 private:
  void worker(int id);
  void work_share(int id);
  void run_share(int id) noexcept;  // work_share, keeping the first exception for the caller
  void launch();  // publishes the job set in job_* to the workers, then waits for all of them to finish it
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  // The current job (valid while a generation is in flight).
  const std::function<void(int64_t, int64_t)>* range_fn_ = nullptr;
  const std::function<void(int64_t)>* task_fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

// parallel_for's min_chunk for row-wise work: enough rows of row_len elements that a chunk holds at least min_elements
// (at least one row), so short rows are not split into chunks too small to pay for a thread.
inline int64_t rows_per_chunk(int64_t row_len, int64_t min_elements) {
  return std::max<int64_t>(1, min_elements / std::max<int64_t>(1, row_len));
}

// The most threads a pool is asked for (WATTMOE_THREADS, --threads).
inline constexpr int kMaxThreads = 1024;

// The thread count WATTMOE_THREADS asks for: null or empty = 0 (one per core), else a whole number 1..kMaxThreads;
// anything else throws Error naming the variable.
int parse_thread_count(const char* value);

// The size of the process-wide pool, n threads (the CLI's --threads), in place of WATTMOE_THREADS and the core count.
// Call before the pool's first use: throws Error when n is outside 1..kMaxThreads, or when the pool already exists
// with another size (a call with its size does nothing).
void set_default_pool_threads(int n);

// The pool the CPU ops use: on a pool's worker thread, that pool (so nested calls run inline); else the innermost
// PoolScope of the calling thread; else the process-wide pool (created on first use; size from
// set_default_pool_threads, else WATTMOE_THREADS, else one per core; logged at debug level as "thread pool: N threads").
ThreadPool& default_pool();

// While alive, default_pool() on this thread returns `pool`: lets tests run the same ops on pools of different sizes
// in one process (and a program keep separate pools for separate work).
class PoolScope {
 public:
  explicit PoolScope(ThreadPool& pool);
  ~PoolScope();
  PoolScope(const PoolScope&) = delete;
  PoolScope& operator=(const PoolScope&) = delete;

 private:
  ThreadPool* prev_;
};

}  // namespace wattmoe
