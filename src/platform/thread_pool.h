// A fixed pool of worker threads for the kernels.
//
// run(fn) calls fn(thread_index, n_threads) once on each of n_threads threads (the caller
// is thread 0) and returns when all have finished. Workers spin briefly between jobs and
// then sleep, so back-to-back kernel launches in a forward pass cost little.
//
// run_items(n, fn) calls fn(item, thread_index) once for each item in [0, n), handing the
// items out one at a time from a shared counter to whichever threads are running. It
// returns when every item is done, without waiting for workers that never took one: on a
// machine with more runnable threads than cores, a descheduled worker delays a run_items
// by at most the item it holds, where it delays a run() until it is scheduled again.
//
// Thread safety: one ThreadPool is driven by one caller thread at a time; run() and
// run_items() are not reentrant. fn must not throw.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hearth::platform {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  void run(const std::function<void(int thread_index, int n_threads)>& fn);
  void run_items(int64_t n_items, const std::function<void(int64_t item, int thread_index)>& fn);

  // Splits [0, n) into n_threads near-equal contiguous chunks; chunk for thread ti.
  static void chunk(int64_t n, int ti, int nt, int64_t* begin, int64_t* end) {
    const int64_t per = n / nt, rem = n % nt;
    *begin = ti * per + (ti < rem ? ti : rem);
    *end = *begin + per + (ti < rem ? 1 : 0);
  }

 private:
  void worker(int index);
  // Publishes a new generation (its low bit: 1 = a run_items job) and wakes the workers.
  uint64_t publish(bool items);
  // Takes and runs items of generation g until none is left; false if g is over.
  void work_items(uint64_t g, int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  // Generations advance by 2; the low bit says which kind of job the generation is.
  std::atomic<uint64_t> generation_{0};
  // run_items: (generation << 32 | next item), so a late worker's claim on an old
  // generation fails; the job and count are read only after a successful claim.
  std::atomic<uint64_t> claim_{0};
  const std::function<void(int64_t, int)>* items_job_ = nullptr;
  std::atomic<int64_t> n_items_{0};
  std::atomic<int64_t> items_done_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

// Number of physical cores (not SMT siblings); at least 1.
int physical_core_count();

}  // namespace hearth::platform
