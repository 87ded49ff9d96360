// ThreadPool: every task and every index runs exactly once on pools of 1..4 threads, nested calls run inline
// (no deadlock), PoolScope routes default_pool(), a worker's nested calls see its own pool, and WATTMOE_THREADS
// values are validated.
#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/error.h"

namespace wattmoe {
namespace {

TEST(ThreadPool, RunTasksVisitsEveryTaskOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      for (int rep = 0; rep < 3; ++rep) pool.run_tasks(n, [&](int64_t i) { seen[size_t(i)]++; });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[size_t(i)].load(), 3) << threads << " threads, task " << i;
    }
  }
}

TEST(ThreadPool, ParallelForCoversTheRangeInDisjointChunks) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 5, 64, 1001}) {
      std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        EXPECT_LT(b, e);
        for (int64_t i = b; i < e; ++i) seen[size_t(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(seen[size_t(i)].load(), 1) << n << " " << i;
    }
  }
}

TEST(ThreadPool, NestedCallsRunInlineAndFinish) {
  ThreadPool pool(3);
  PoolScope scope(pool);
  std::atomic<int64_t> sum{0};
  default_pool().run_tasks(8, [&](int64_t i) {
    EXPECT_TRUE(default_pool().busy());
    EXPECT_EQ(&default_pool(), &pool);  // on the caller via the scope, on the workers as their own pool
    default_pool().run_tasks(4, [&](int64_t j) { sum += i * 4 + j; });
    default_pool().parallel_for(3, [&](int64_t b, int64_t e) { sum += 100 * (e - b); });
  });
  EXPECT_EQ(sum.load(), 31 * 32 / 2 + 8 * 300);
  EXPECT_FALSE(pool.busy());
}

TEST(ThreadPool, PoolScopeRestoresThePreviousPool) {
  ThreadPool& global = default_pool();
  {
    ThreadPool a(2);
    PoolScope sa(a);
    EXPECT_EQ(&default_pool(), &a);
    {
      ThreadPool b(1);
      PoolScope sb(b);
      EXPECT_EQ(&default_pool(), &b);
    }
    EXPECT_EQ(&default_pool(), &a);
  }
  EXPECT_EQ(&default_pool(), &global);
}

TEST(ThreadPool, CallsFromSeveralThreadsAtOnce) {
  // Concurrent callers (the trainer's shards): one gets the pool, the others run inline; all finish correctly.
  ThreadPool pool(2);
  std::vector<std::thread> callers;
  std::vector<int64_t> sums(4, 0);
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<int64_t> part(16, 0);
        pool.run_tasks(16, [&](int64_t i) { part[size_t(i)] = i; });
        for (int64_t v : part) sums[size_t(c)] += v;
      }
    });
  for (auto& t : callers) t.join();
  for (int64_t s : sums) EXPECT_EQ(s, 50 * 120);
}

TEST(ThreadPool, ExceptionsReachTheCallerAndThePoolStaysUsable) {
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    std::atomic<int> ran{0};
    EXPECT_THROW(pool.run_tasks(64,
                                [&](int64_t i) {
                                  ran++;
                                  if (i == 40) throw Error("task 40 failed");
                                }),
                 Error);
    EXPECT_GE(ran.load(), 41);  // at least every task up to the failing one ran
    EXPECT_THROW(pool.parallel_for(100, [&](int64_t b, int64_t) { if (b > 0 || threads == 1) throw Error("chunk"); }),
                 Error);
    std::atomic<int64_t> sum{0};
    pool.run_tasks(10, [&](int64_t i) { sum += i; });
    EXPECT_EQ(sum.load(), 45);
    EXPECT_FALSE(pool.busy());
  }
}

TEST(ThreadPool, ThreadCountFromEnvironment) {
  EXPECT_EQ(parse_thread_count(nullptr), 0);
  EXPECT_EQ(parse_thread_count(""), 0);
  EXPECT_EQ(parse_thread_count("1"), 1);
  EXPECT_EQ(parse_thread_count("16"), 16);
  for (const char* bad : {"0", "-2", "two", "3x", "1e3", "100000"}) {
    try {
      parse_thread_count(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("WATTMOE_THREADS"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

// --threads: out of range refused naming the flag; once the process-wide pool exists only its own size is accepted
// (a later call could not resize it). The pool's size itself is checked through the CLI (tests/cli/threads.sh).
TEST(ThreadPool, SetDefaultPoolThreads) {
  for (int bad : {0, -1, kMaxThreads + 1}) {
    try {
      set_default_pool_threads(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--threads " + std::to_string(bad)), std::string::npos) << e.what();
    }
  }
  const int n = default_pool().size();
  EXPECT_NO_THROW(set_default_pool_threads(n));
  EXPECT_THROW(set_default_pool_threads(n + 1), Error);
  EXPECT_EQ(default_pool().size(), n);
}

}  // namespace
}  // namespace wattmoe
