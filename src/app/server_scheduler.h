// Slots and a bounded queue: who generates what, when.
//
// Each slot owns an engine::Context (KV cache) and a worker thread; the Model is shared
// (immutable). A submitted job goes to the idle slot whose cache its prompt continues
// (the longest common prefix, covering at least half of that cache: a conversation that
// comes back finds its own cache and generate() evaluates only what is new), else to the
// least recently used idle slot; with no idle slot it waits in a FIFO queue of at most
// queue_max jobs; beyond that submit() fails (the server answers 503). A queued job
// goes to the first slot that frees up.
//
// Invariants (guarded by Scheduler::mutex_):
//   - a slot is busy exactly while it holds a job; a busy slot's cache is touched only
//     by its worker, an idle slot's `cached` copy is what routing reads;
//   - a job is in at most one place: the queue, one slot, or finished;
//   - every submitted job is finished exactly once (result, cancellation, timeout or
//     shutdown), so a waiter never hangs and a slot never leaks.
// Cancellation: Job::cancel() from any thread stops generation at the next token; a
// cancelled job still in the queue is dropped when a slot would take it.
//
// Future work: decode several slots in one batched forward pass (continuous batching);
// today each slot runs its own forward on its share of the cores.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/generator.h"
#include "engine/model.h"
#include "platform/status.h"

namespace hearth::app {

// One generation request and the channel its text travels through.
// Thread safety: all members may be called from any thread.
class Job {
 public:
  using Clock = std::chrono::steady_clock;
  Job(std::vector<int32_t> prompt, engine::GenerateParams params, Clock::time_point deadline)
      : prompt_(std::move(prompt)), params_(std::move(params)), deadline_(deadline) {}

  const std::vector<int32_t>& prompt() const { return prompt_; }
  const engine::GenerateParams& params() const { return params_; }
  Clock::time_point deadline() const { return deadline_; }

  // Stops the job as soon as possible (idempotent).
  void cancel() { cancel_.store(true); }
  bool cancelled() const { return cancel_.load(); }
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }
  // Marks the job as past its deadline and cancels it.
  void expire();
  bool expired() const { return expired_.load(); }

  // Worker side: text as it is generated; false when the job should stop.
  bool push_text(std::string_view text);
  // Worker side: the end (exactly once).
  void finish(Expected<engine::GenerateResult> result);

  // Waiter side: waits up to `wait` for new text or the end; appends new text to `out`.
  // Returns true once the job has finished and all its text has been taken.
  bool wait_next(std::string& out, std::chrono::milliseconds wait);
  // Waits for the end (or the deadline, which expires the job) and returns the result.
  const Expected<engine::GenerateResult>& wait_result();
  // Only after wait_next returned true or wait_result returned.
  const Expected<engine::GenerateResult>& result() const { return result_; }

 private:
  const std::vector<int32_t> prompt_;
  const engine::GenerateParams params_;
  const Clock::time_point deadline_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> expired_{false};
  std::mutex mutex_;  // guards pending_, finished_, result_
  std::condition_variable cv_;
  std::string pending_;
  bool finished_ = false;
  Expected<engine::GenerateResult> result_{Error{"not finished"}};
};

struct SchedulerOptions {
  int n_slots = 2;
  int queue_max = 16;
  engine::ContextParams context;  // per slot; n_threads 0 = max(1, physical cores / n_slots)
};

class Scheduler {
 public:
  static Expected<std::unique_ptr<Scheduler>> create(const engine::Model& model,
                                                     const SchedulerOptions& options);
  // Cancels running jobs, finishes queued ones with an error, joins the workers.
  ~Scheduler();

  // Refuses new jobs, cancels running ones and finishes queued ones with an error
  // (idempotent; the workers exit once their current job has stopped).
  void stop();

  // Starts or queues the job; fails (and queues nothing) when the queue is full.
  Status submit(const std::shared_ptr<Job>& job);

  struct Stats {
    int slots = 0;
    int busy = 0;
    int queued = 0;
  };
  Stats stats() const;
  int64_t n_ctx() const { return n_ctx_; }
  int threads_per_slot() const { return threads_per_slot_; }

 private:
  struct Slot {
    std::unique_ptr<engine::Context> ctx;
    std::vector<int32_t> cached;  // copy of ctx->tokens() while idle
    std::shared_ptr<Job> job;     // non-null while busy
    uint64_t last_used = 0;       // use_counter_ when it last took a job
    std::thread worker;
  };
  Scheduler() = default;
  void work(Slot& slot);
  // Next live job from the queue, or null. Caller holds mutex_.
  std::shared_ptr<Job> pop_queued();

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::deque<std::shared_ptr<Job>> queue_;
  uint64_t use_counter_ = 0;
  int queue_max_ = 0;
  int64_t n_ctx_ = 0;
  int threads_per_slot_ = 1;
  bool stopping_ = false;
};

}  // namespace hearth::app
