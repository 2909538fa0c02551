// Slots, a bounded queue and one engine loop that decodes every busy slot together.
//
// Each slot owns an engine::Sequence (its KV cache); the Model is shared (immutable). One
// engine thread owns the Evaluator (the thread pool and scratch) and runs continuous
// batching: every step is ONE forward pass carrying the next token of each decoding slot
// and, in the room left of n_batch, the next prompt chunk of slots still prefilling; new
// jobs join between steps and finished, cancelled or timed-out ones leave at once (a
// client that disconnects frees its slot at the next step). Each slot's answer is an
// engine::Generation, the same code `hearth run` uses.
//
// A submitted job goes to the idle slot whose cache its prompt continues (the longest
// common prefix, covering at least half of that cache: a conversation that comes back
// finds its own cache and only what is new is evaluated), else to the least recently
// used idle slot; with no idle slot it waits in a FIFO queue of at most queue_max jobs;
// beyond that submit() fails (the server answers 503). A queued job goes to the first
// slot that frees up.
//
// Invariants:
//   - a slot is busy exactly while `job` is set (guarded by mutex_); only the engine
//     thread touches a slot's Sequence and Generation; an idle slot's `cached` copy of
//     its tokens is what routing reads;
//   - a job is in at most one place: the queue, one slot, or finished;
//   - every submitted job is finished exactly once (result, cancellation, timeout or
//     shutdown), so a waiter never hangs and a slot never leaks; the slot is freed before
//     the waiter hears the end, so a conversation's next turn finds its cache idle;
//   - a step holds at most n_batch tokens and every busy slot that is decoding has its
//     token in it (prefill chunks only take the room that is left).
// Cancellation: Job::cancel() from any thread stops generation before the next step; a
// cancelled job still in the queue is dropped when a slot would take it.
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
  engine::ContextParams context;  // n_ctx per slot; n_batch tokens per step; n_threads 0 = cores
};

class Scheduler {
 public:
  static Expected<std::unique_ptr<Scheduler>> create(const engine::Model& model,
                                                     const SchedulerOptions& options);
  // Cancels running jobs, finishes queued ones with an error, joins the engine thread.
  ~Scheduler();

  // Refuses new jobs, cancels running ones and finishes queued ones with an error
  // (idempotent; the engine thread exits once the running jobs have been finished).
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
  // Threads of the engine, shared by all slots.
  int threads_per_slot() const { return threads_; }

 private:
  struct Slot {
    std::unique_ptr<engine::Sequence> seq;
    std::vector<int32_t> cached;  // copy of seq->tokens() while idle (mutex_)
    std::shared_ptr<Job> job;     // non-null while busy (mutex_)
    uint64_t last_used = 0;       // use_counter_ when it last took a job (mutex_)
    // Engine thread only: the job being generated and where it stands.
    std::shared_ptr<Job> running;
    std::unique_ptr<engine::Generation> gen;
    std::vector<int32_t> pending;  // prompt tokens not yet evaluated, from pending_at
    size_t pending_at = 0;
    int32_t next_token = -1;  // decoding: the sampled token to evaluate next
  };
  Scheduler() = default;
  // The engine thread: steps until stop() and every job has finished.
  void run();
  // Engine thread: sets up the slot's new job (or finishes it when it cannot start).
  void begin(Slot& slot);
  // Engine thread: finishes the slot's job with `result`, frees the slot, takes the next
  // queued job.
  void retire(Slot& slot, Expected<engine::GenerateResult> result);
  // Next live job from the queue, or null. Caller holds mutex_.
  std::shared_ptr<Job> pop_queued();

  const engine::Model* model_ = nullptr;
  std::unique_ptr<engine::Evaluator> eval_;
  std::vector<float> logits_;  // [n_slots, n_vocab]: one step's rows
  std::vector<engine::Evaluator::Item> items_;
  std::vector<Slot*> item_slots_;  // the slot of each item
  std::vector<Slot*> busy_;        // this step's busy slots
  std::thread engine_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::deque<std::shared_ptr<Job>> queue_;
  uint64_t use_counter_ = 0;
  int queue_max_ = 0;
  int64_t n_ctx_ = 0;
  int threads_ = 1;
  bool stopping_ = false;
};

}  // namespace hearth::app
