#include "core/thread_pool.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include "core/error.h"
#include "core/log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace wattmoe {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// How long an idle worker (or a caller waiting for workers) spins before it sleeps (or yields): long enough to
// bridge the gap between the parallel regions of one layer, short enough not to steal a shared core for long.
constexpr int kSpinIters = 4000;  // tens of microseconds of pause instructions

// The pool default_pool() returns on this thread (null: the process-wide one). Set for a pool's workers and by
// PoolScope; it selects where work runs, never what is computed.
thread_local ThreadPool* t_pool = nullptr;

// The process-wide pool's size as set by set_default_pool_threads (0: not set), and the pool once it exists.
std::atomic<int> g_default_threads{0};
std::atomic<const ThreadPool*> g_default_pool{nullptr};

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work_share(int id) {
  if (task_fn_) {
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n_;) (*task_fn_)(i);
  } else {
    const int64_t b = int64_t(id) * chunk_, e = std::min(n_, b + chunk_);
    if (b < e) (*range_fn_)(b, e);
  }
}

void ThreadPool::run_share(int id) noexcept {
  try {
    work_share(id);
  } catch (...) {
    std::lock_guard<std::mutex> l(error_mu_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker(int id) {
  t_pool = this;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
      if (spin < kSpinIters) {
        cpu_relax();
      } else {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; });
      }
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = g;
    run_share(id);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::launch() {
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> l(mu_);  // orders the bump against a worker about to sleep
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  run_share(0);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinIters) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  range_fn_ = nullptr, task_fn_ = nullptr;
  std::exception_ptr error = std::exchange(error_, nullptr);
  busy_.store(false);
  if (error) std::rethrow_exception(error);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t threads = std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk)));
  if (threads <= 1 || workers_.empty() || busy_.exchange(true)) {
    fn(0, n);
    return;
  }
  range_fn_ = &fn, task_fn_ = nullptr;
  n_ = n, chunk_ = (n + size() - 1) / size();
  launch();
}

void ThreadPool::run_tasks(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || workers_.empty() || busy_.exchange(true)) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  range_fn_ = nullptr, task_fn_ = &fn;
  n_ = n, chunk_ = 0;
  next_.store(0, std::memory_order_relaxed);
  launch();
}

int parse_thread_count(const char* value) {
  if (!value || !*value) return 0;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(value, &end, 10);
  WATTMOE_REQUIRE(errno == 0 && *end == '\0' && n >= 1 && n <= kMaxThreads,
                  "WATTMOE_THREADS=\"{}\": expected a whole number of threads from 1 to {} (unset: one per core)",
                  value, kMaxThreads);
  return int(n);
}

void set_default_pool_threads(int n) {
  WATTMOE_REQUIRE(n >= 1 && n <= kMaxThreads, "--threads {}: expected a whole number of threads from 1 to {}", n,
                  kMaxThreads);
  if (const ThreadPool* pool = g_default_pool.load()) {
    WATTMOE_REQUIRE(pool->size() == n, "--threads {}: the thread pool already runs {} threads", n, pool->size());
    return;
  }
  g_default_threads.store(n);
}

ThreadPool& default_pool() {
  if (t_pool) return *t_pool;
  static ThreadPool pool([] {
    if (const int n = g_default_threads.load()) return n;
    return parse_thread_count(std::getenv("WATTMOE_THREADS"));
  }());
  static const bool published = [] {
    g_default_pool.store(&pool);
    log_debug("thread pool: {} threads", pool.size());
    return true;
  }();
  (void)published;
  return pool;
}

PoolScope::PoolScope(ThreadPool& pool) : prev_(t_pool) { t_pool = &pool; }

PoolScope::~PoolScope() { t_pool = prev_; }

}  // namespace wattmoe
