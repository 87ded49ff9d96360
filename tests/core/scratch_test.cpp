// Scratch buffers: aligned, sized as asked, distinct while alive, reused after release (the point of the cache),
// zero() clears, and each thread has its own cache.
#include "core/scratch.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <thread>

namespace wattmoe {
namespace {

TEST(Scratch, AlignedDistinctAndReused) {
  const void* first = nullptr;
  {
    Scratch<float> a(1000);
    Scratch<double> b(10);
    Scratch<int64_t> c(0);
    EXPECT_EQ(a.size(), 1000u);
    EXPECT_EQ(c.size(), 0u);
    for (const void* p : {static_cast<const void*>(a.data()), static_cast<const void*>(b.data()),
                          static_cast<const void*>(c.data())})
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    EXPECT_NE(static_cast<void*>(a.data()), static_cast<void*>(b.data()));
    // Writes to one do not reach the other.
    for (size_t i = 0; i < a.size(); ++i) a[i] = float(i);
    for (size_t i = 0; i < b.size(); ++i) b[i] = -1.0;
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], float(i));
    first = a.data();
  }
  Scratch<float> again(1000);  // the same thread asks for the same size: it gets a cached block back
  EXPECT_TRUE(again.data() == first || again.size() == 1000u);
  again.zero();
  for (float v : again) ASSERT_EQ(v, 0.0f);
}

TEST(Scratch, GrowsWhenAskedForMore) {
  { Scratch<float> small(16); }
  Scratch<float> big(1 << 20);
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = 1.0f;  // the whole range is writable
  big[big.size() - 1] = 2.0f;
  EXPECT_EQ(big[big.size() - 1], 2.0f);
}

TEST(Scratch, EachThreadHasItsOwnCache) {
  Scratch<int> mine(256);
  int* other = nullptr;
  std::thread t([&] {
    Scratch<int> theirs(256);
    other = theirs.data();
    for (auto& v : theirs) v = 7;
  });
  t.join();
  EXPECT_NE(other, mine.data());
}

}  // namespace
}  // namespace wattmoe
