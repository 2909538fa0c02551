// A fixed pool of worker threads for the kernels.
//
// run(fn) calls fn(thread_index, n_threads) once on each of n_threads threads (the caller
// is thread 0) and returns when all have finished. Workers spin briefly between jobs and
// then sleep, so back-to-back kernel launches in a forward pass cost little.
//
// Thread safety: one ThreadPool is driven by one caller thread at a time; run() is not
// reentrant. fn must not throw.
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

  // Splits [0, n) into n_threads near-equal contiguous chunks; chunk for thread ti.
  static void chunk(int64_t n, int ti, int nt, int64_t* begin, int64_t* end) {
    const int64_t per = n / nt, rem = n % nt;
    *begin = ti * per + (ti < rem ? ti : rem);
    *end = *begin + per + (ti < rem ? 1 : 0);
  }

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

// Number of physical cores (not SMT siblings); at least 1.
int physical_core_count();

}  // namespace hearth::platform
