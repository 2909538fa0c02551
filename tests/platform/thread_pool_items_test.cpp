// ThreadPool::run_items: every item exactly once per call, across many back-to-back calls
// mixed with run(), with pools larger than the machine (oversubscribed).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>
#include <vector>

#include "platform/thread_pool.h"

namespace hearth::platform {
namespace {

TEST(ThreadPoolItems, EveryItemOncePerCall) {
  for (int nt : {1, 2, 3, 5}) {
    ThreadPool pool(nt);
    for (int64_t n : {0, 1, 2, 7, 64, 1000}) {
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad_thread{0};
        pool.run_items(n, [&](int64_t i, int ti) {
          if (ti < 0 || ti >= nt) bad_thread.fetch_add(1);
          hits[static_cast<size_t>(i)].fetch_add(1);
        });
        EXPECT_EQ(bad_thread.load(), 0);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << nt << " " << n;
      }
    }
  }
}

// Back-to-back calls whose item count grows: a worker still leaving call k must not take
// an item of call k + 1 through call k's claim counter. (It once could: it read the new,
// larger count before the caller reset the counter, ran an item of the new job that was
// run again later, and the extra completion left the caller spinning forever. Seen as a
// hung `hearth perplexity` while the loader repacked tensors of different sizes.)
// A hang fails the test after 60 s instead of waiting for ctest's timeout.
TEST(ThreadPoolItems, GrowingItemCountsNeverRunAnItemTwice) {
  auto body = [] {
    for (int nt : {2, 3, 6}) {  // 6: more threads than cores, so workers get descheduled
      ThreadPool pool(nt);
      std::vector<std::atomic<int>> hits(64);
      for (int call = 0; call < 100000; ++call) {
        const int64_t n = 2 + call % 31;
        for (int64_t i = 0; i < n; ++i) hits[static_cast<size_t>(i)].store(0, std::memory_order_relaxed);
        pool.run_items(n, [&](int64_t i, int) { hits[static_cast<size_t>(i)].fetch_add(1); });
        for (int64_t i = 0; i < n; ++i)
          if (hits[static_cast<size_t>(i)].load() != 1) return false;
      }
    }
    return true;
  };
  auto done = std::async(std::launch::async, body);
  if (done.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "run_items did not return within 60 s (a lost item count)\n");
    std::_Exit(1);
  }
  EXPECT_TRUE(done.get()) << "an item ran twice or not at all";
}

TEST(ThreadPoolItems, InterleavesWithRunAndSeesPriorWrites) {
  ThreadPool pool(3);
  std::vector<int64_t> data(256, 0);
  for (int round = 1; round <= 500; ++round) {
    // Written by run(), then read by run_items(), then checked here: each call's writes
    // are visible to the next.
    pool.run([&](int ti, int nt) {
      int64_t b, e;
      ThreadPool::chunk(static_cast<int64_t>(data.size()), ti, nt, &b, &e);
      for (int64_t i = b; i < e; ++i) data[static_cast<size_t>(i)] = round;
    });
    std::atomic<int> wrong{0};
    pool.run_items(static_cast<int64_t>(data.size()), [&](int64_t i, int) {
      if (data[static_cast<size_t>(i)] != round) wrong.fetch_add(1);
      data[static_cast<size_t>(i)] = -round;
    });
    ASSERT_EQ(wrong.load(), 0) << round;
    for (int64_t v : data) ASSERT_EQ(v, -round);
  }
}

}  // namespace
}  // namespace hearth::platform
