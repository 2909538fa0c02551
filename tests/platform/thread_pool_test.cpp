#include "platform/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

namespace hearth::platform {
namespace {

// The machine running the tests may have fewer cores than these pools have threads, so
// the counts below are kept small enough for a few seconds even when oversubscribed.

TEST(ThreadPool, SizeIsAtLeastOne) {
  EXPECT_EQ(ThreadPool(0).size(), 1);
  EXPECT_EQ(ThreadPool(-5).size(), 1);
  EXPECT_EQ(ThreadPool(1).size(), 1);
  EXPECT_EQ(ThreadPool(3).size(), 3);
}

TEST(ThreadPool, EveryIndexRunsOncePerRun) {
  for (int nt : {2, 3, 4}) {
    ThreadPool pool(nt);
    for (int run = 0; run < 50; ++run) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(nt));
      std::atomic<int> bad_nt{0};
      pool.run([&](int ti, int n) {
        if (n != nt || ti < 0 || ti >= nt) {
          bad_nt.fetch_add(1);
          return;
        }
        hits[static_cast<size_t>(ti)].fetch_add(1);
      });
      EXPECT_EQ(bad_nt.load(), 0);
      for (int i = 0; i < nt; ++i) {
        EXPECT_EQ(hits[static_cast<size_t>(i)].load(), 1)
            << "nt " << nt << " run " << run << " index " << i;
      }
    }
  }
}

TEST(ThreadPool, CallerIsThreadZeroOthersAreDistinctThreads) {
  ThreadPool pool(4);
  std::vector<std::thread::id> ids(4);
  pool.run([&](int ti, int) { ids[static_cast<size_t>(ti)] = std::this_thread::get_id(); });
  EXPECT_EQ(ids[0], std::this_thread::get_id());
  EXPECT_EQ(std::set<std::thread::id>(ids.begin(), ids.end()).size(), 4u);
}

TEST(ThreadPool, ManyBackToBackRunsSeeEachOthersWrites) {
  // Each run reads what every thread wrote in the previous run (plain, non-atomic
  // memory): run() must order the workers' writes before its return and the caller's
  // writes before the next job starts.
  constexpr int kThreads = 3;
  constexpr int kRuns = 1000;
  ThreadPool pool(kThreads);
  std::vector<int64_t> slot(kThreads, 0);
  int64_t errors = 0;
  std::vector<int64_t> thread_errors(kThreads, 0);
  for (int r = 1; r <= kRuns; ++r) {
    pool.run([&](int ti, int nt) {
      // Everyone sees the previous round complete...
      for (int j = 0; j < nt; ++j) {
        if (slot[static_cast<size_t>(j)] != r - 1) ++thread_errors[static_cast<size_t>(ti)];
      }
    });
    pool.run([&](int ti, int) { slot[static_cast<size_t>(ti)] = r; });
    // ...and the caller sees this one.
    for (int j = 0; j < kThreads; ++j) errors += slot[static_cast<size_t>(j)] != r;
  }
  EXPECT_EQ(errors, 0);
  for (int ti = 0; ti < kThreads; ++ti) EXPECT_EQ(thread_errors[static_cast<size_t>(ti)], 0);
}

TEST(ThreadPool, RunsAfterWorkersFellAsleep) {
  ThreadPool pool(3);
  for (int round = 0; round < 3; ++round) {
    // Long enough for the workers to stop spinning and block on the condition variable.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::atomic<int> sum{0};
    pool.run([&](int ti, int) { sum.fetch_add(ti + 1); });
    EXPECT_EQ(sum.load(), 1 + 2 + 3);
  }
}

TEST(ThreadPool, SingleThreadRunsOnCaller) {
  ThreadPool pool(1);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.run([&](int ti, int nt) {
    EXPECT_EQ(ti, 0);
    EXPECT_EQ(nt, 1);
    EXPECT_EQ(std::this_thread::get_id(), caller);
    ++calls;
  });
  for (int i = 0; i < 1000; ++i) pool.run([&](int, int) { ++calls; });
  EXPECT_EQ(calls, 1001);
}

TEST(ThreadPool, DestructionWhileIdle) {
  // Destroyed before the workers even started, right after a run, and after they slept.
  for (int i = 0; i < 20; ++i) ThreadPool pool(3);
  for (int i = 0; i < 20; ++i) {
    ThreadPool pool(3);
    std::atomic<int> n{0};
    pool.run([&](int, int) { n.fetch_add(1); });
    EXPECT_EQ(n.load(), 3);
  }
  {
    ThreadPool pool(3);
    pool.run([](int, int) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  SUCCEED();  // reaching here means every destructor joined its workers
}

TEST(ThreadPool, WorkIsActuallyParallel) {
  // Two threads each wait for the other: would deadlock if run() executed the indices
  // one after another on one thread. Bounded wait so a failure does not hang the suite.
  ThreadPool pool(2);
  std::atomic<int> arrived{0};
  std::atomic<int> met{0};
  pool.run([&](int, int) {
    arrived.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    if (arrived.load() == 2) met.fetch_add(1);
  });
  EXPECT_EQ(met.load(), 2);
}

TEST(ThreadPool, ChunkCoversRangeExactlyAndEvenly) {
  for (int64_t n : {0, 1, 2, 7, 64, 100, 1001}) {
    for (int nt = 1; nt <= 9; ++nt) {
      int64_t expect_begin = 0;
      for (int ti = 0; ti < nt; ++ti) {
        int64_t b = -1, e = -1;
        ThreadPool::chunk(n, ti, nt, &b, &e);
        EXPECT_EQ(b, expect_begin) << "n " << n << " nt " << nt << " ti " << ti;
        EXPECT_GE(e - b, n / nt);
        EXPECT_LE(e - b, n / nt + 1);
        expect_begin = e;
      }
      EXPECT_EQ(expect_begin, n) << "n " << n << " nt " << nt;
    }
  }
}

TEST(ThreadPool, ChunkHandlesLargeRanges) {
  const int64_t n = (int64_t{1} << 40) + 3;
  int64_t b = 0, e = 0;
  ThreadPool::chunk(n, 7, 8, &b, &e);
  EXPECT_EQ(e, n);
  EXPECT_EQ(e - b, n / 8);
}

TEST(ThreadPool, PhysicalCoreCountIsPositiveAndBounded) {
  const int n = physical_core_count();
  EXPECT_GE(n, 1);
  const unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0) {
    EXPECT_LE(n, static_cast<int>(hw));
  }
}

}  // namespace
}  // namespace hearth::platform
