#include "platform/thread_pool.h"

#include <sched.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>

namespace hearth::platform {

namespace {
// A waiting thread pause-spins (tens of microseconds), then yields its core so that an
// oversubscribed machine still makes progress (measured on 2 loaded cores: 3-thread
// back-to-back runs went from ~3 ms to ~0.5 ms each), then a worker sleeps on cv_.
constexpr int kSpinBeforeYield = 2000;
constexpr int kSpinBeforeSleep = 3000;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(2);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

namespace {
inline void spin_pause(int spin) {
  if (spin < kSpinBeforeYield) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}
}  // namespace

uint64_t ThreadPool::publish(bool items) {
  uint64_t g;
  {
    std::lock_guard<std::mutex> lock(mu_);
    g = (generation_.load(std::memory_order_relaxed) | 1) + 1 + (items ? 1 : 0);
    generation_.store(g, std::memory_order_release);
  }
  cv_.notify_all();
  return g;
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  publish(false);
  fn(0, n_threads_);
  // Wait for the workers; they finish within microseconds on the hot path. When there are
  // more runnable threads than cores, a worker may be waiting for this very core: after a
  // short spin, yield it instead of burning a whole scheduler time slice.
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) spin_pause(spin);
  job_ = nullptr;
}

void ThreadPool::run_items(int64_t n_items, const std::function<void(int64_t, int)>& fn) {
  if (n_items <= 0) return;
  if (n_threads_ == 1 || n_items == 1) {
    for (int64_t i = 0; i < n_items; ++i) fn(i, 0);
    return;
  }
  // The next generation number is known before publishing, so the claim counter is ready
  // (released by publish's store) before any worker can see the generation. It is set
  // first: a worker still leaving the previous call may yet try to claim through that
  // call's counter, and must fail (its compare-exchange sees the new tag) before it can see
  // this call's larger n_items_ (released below, acquired in work_items). Otherwise it
  // could run an item of this call twice and count it, and this call would wait forever.
  const uint64_t next = (generation_.load(std::memory_order_relaxed) | 1) + 2;
  claim_.store(next << 32, std::memory_order_relaxed);
  items_job_ = &fn;
  items_done_.store(0, std::memory_order_relaxed);
  n_items_.store(n_items, std::memory_order_release);
  const uint64_t g = publish(true);
  work_items(g, 0);
  for (int spin = 0; items_done_.load(std::memory_order_acquire) != n_items; ++spin) spin_pause(spin);
  items_job_ = nullptr;
}

void ThreadPool::work_items(uint64_t g, int index) {
  const uint64_t tag = g << 32;
  uint64_t c = claim_.load(std::memory_order_acquire);
  for (;;) {
    if ((c & ~uint64_t{0xffffffff}) != tag) return;  // another generation
    const int64_t item = static_cast<int64_t>(c & 0xffffffff);
    if (item >= n_items_.load(std::memory_order_acquire)) return;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      continue;
    // The claim succeeded, so this generation's caller is still waiting for item: its job
    // pointer is live.
    (*items_job_)(item, index);
    items_done_.fetch_add(1, std::memory_order_acq_rel);
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little for the next job, then sleep on the condition variable.
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinBeforeSleep; ++spin) {
      spin_pause(spin);
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load()) return;
    if (g & 1) {
      work_items(g, index);
      continue;
    }
    (*job_)(index, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

int physical_core_count() {
  // Distinct (physical id, core id) pairs in /proc/cpuinfo, capped by the CPUs this
  // process may run on (affinity mask, e.g. taskset or a container's cpuset).
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto val = [&] {
      const auto p = line.find(':');
      return p == std::string::npos || p + 2 > line.size() ? std::string() : line.substr(p + 2);
    };
    if (line.rfind("physical id", 0) == 0) phys = val();
    if (line.rfind("core id", 0) == 0) cores.insert({phys, val()});
  }
  int n = static_cast<int>(cores.size());
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int allowed = CPU_COUNT(&set);
    if (allowed > 0 && allowed < n) n = allowed;
  }
  return n < 1 ? 1 : n;
}

}  // namespace hearth::platform
