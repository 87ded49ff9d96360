#include "core/thread_pool.h"

#include <algorithm>
#include <cstdlib>

namespace wattmoe {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int id) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    const auto* job = job_;
    int64_t b = int64_t(id) * chunk_, e = std::min(n_, b + chunk_);
    l.unlock();
    if (b < e) (*job)(b, e);
    l.lock();
    if (--pending_ == 0) done_cv_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  int64_t threads = std::min<int64_t>(size(), std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk)));
  if (threads <= 1 || workers_.empty() || busy_.exchange(true)) {
    fn(0, n);
    return;
  }
  int64_t chunk = (n + size() - 1) / size();
  {
    std::lock_guard<std::mutex> l(mu_);
    job_ = &fn;
    n_ = n;
    chunk_ = chunk;
    pending_ = int(workers_.size());
    ++generation_;
  }
  cv_.notify_all();
  fn(0, std::min(n, chunk));
  std::unique_lock<std::mutex> l(mu_);
  done_cv_.wait(l, [&] { return pending_ == 0; });
  job_ = nullptr;
  busy_.store(false);
}

ThreadPool& default_pool() {
  static ThreadPool pool([] {
    const char* env = std::getenv("WATTMOE_THREADS");
    return env ? std::atoi(env) : 0;
  }());
  return pool;
}

}  // namespace wattmoe
