#include "app/server_scheduler.h"

#include <algorithm>

#include "platform/thread_pool.h"

namespace hearth::app {

void Job::expire() {
  expired_.store(true);
  cancel();
}

bool Job::push_text(std::string_view text) {
  if (Clock::now() >= deadline_) expire();
  if (cancelled()) return false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.append(text);
  }
  cv_.notify_all();
  return true;
}

void Job::finish(Expected<engine::GenerateResult> result) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;
    result_ = std::move(result);
    finished_ = true;
  }
  cv_.notify_all();
}

bool Job::wait_next(std::string& out, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, wait, [&] { return finished_ || !pending_.empty(); });
  if (!finished_ && Clock::now() >= deadline_) expire();
  out.append(pending_);
  pending_.clear();
  return finished_;
}

const Expected<engine::GenerateResult>& Job::wait_result() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!finished_) {
    if (cv_.wait_until(lock, deadline_, [&] { return finished_; })) break;
    expire();  // the worker stops at its next token and finishes the job
    cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return finished_; });
  }
  return result_;
}

Expected<std::unique_ptr<Scheduler>> Scheduler::create(const engine::Model& model,
                                                       const SchedulerOptions& options) {
  if (options.n_slots < 1 || options.n_slots > 64)
    return make_error("the number of parallel slots must be 1 to 64 (got {})", options.n_slots);
  if (options.queue_max < 0)
    return make_error("the queue size must be 0 or more (got {})", options.queue_max);
  std::unique_ptr<Scheduler> s(new Scheduler());
  s->queue_max_ = options.queue_max;
  engine::ContextParams cp = options.context;
  if (cp.n_threads == 0)
    cp.n_threads = std::max(1, platform::physical_core_count() / options.n_slots);
  s->threads_per_slot_ = cp.n_threads;
  for (int i = 0; i < options.n_slots; ++i) {
    auto ctx = engine::Context::create(model, cp);
    if (!ctx) return make_error("slot {}: {}", i, ctx.error());
    auto slot = std::make_unique<Slot>();
    slot->ctx = std::move(*ctx);
    s->n_ctx_ = slot->ctx->n_ctx();
    s->slots_.push_back(std::move(slot));
  }
  for (auto& slot : s->slots_) {
    Slot* p = slot.get();
    Scheduler* self = s.get();
    p->worker = std::thread([self, p] { self->work(*p); });
  }
  return s;
}

Scheduler::~Scheduler() {
  stop();
  for (auto& slot : slots_)
    if (slot->worker.joinable()) slot->worker.join();
}

void Scheduler::stop() {
  std::deque<std::shared_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
    for (auto& slot : slots_)
      if (slot->job) slot->job->cancel();
  }
  cv_.notify_all();
  for (auto& job : dropped) job->finish(make_error("the server is shutting down"));
}

std::shared_ptr<Job> Scheduler::pop_queued() {
  while (!queue_.empty()) {
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    if (!job->cancelled()) return job;
    job->finish(make_error("cancelled before it started"));
  }
  return nullptr;
}

Status Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return make_error("the server is shutting down");
    // Drop queued jobs whose clients have gone, so they do not hold queue places.
    std::erase_if(queue_, [](const std::shared_ptr<Job>& j) {
      if (!j->cancelled()) return false;
      j->finish(make_error("cancelled before it started"));
      return true;
    });
    // The idle slot whose cache this prompt continues (at least half of the cache is a
    // prefix of the prompt); else the least recently used idle slot, so that a new
    // conversation does not wipe the cache of one that may come back.
    Slot* best = nullptr;
    size_t best_common = 0;
    Slot* lru = nullptr;
    for (auto& slot : slots_) {
      if (slot->job) continue;
      if (!lru || slot->last_used < lru->last_used) lru = slot.get();
      const std::vector<int32_t>& a = slot->cached;
      const std::vector<int32_t>& b = job->prompt();
      size_t common = 0;
      while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
      if (common > 0 && 2 * common >= a.size() && (!best || common > best_common)) {
        best = slot.get();
        best_common = common;
      }
    }
    if (!best) best = lru;
    if (best) best->last_used = ++use_counter_;
    if (best) {
      best->job = job;
    } else if (static_cast<int>(queue_.size()) < queue_max_) {
      queue_.push_back(job);
    } else {
      return make_error(
          "the server is busy: all {} slots are generating and {} requests are waiting; try again "
          "later",
          slots_.size(), queue_.size());
    }
  }
  cv_.notify_all();
  return Status::ok();
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats s;
  s.slots = static_cast<int>(slots_.size());
  for (const auto& slot : slots_) s.busy += slot->job ? 1 : 0;
  s.queued = static_cast<int>(queue_.size());
  return s;
}

void Scheduler::work(Slot& slot) {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return slot.job || stopping_; });
      if (!slot.job) return;  // stopping, nothing assigned
      job = slot.job;
    }
    Expected<engine::GenerateResult> res{Error{"cancelled"}};
    if (job->cancelled()) {
      if (job->expired()) res = make_error("timed out while waiting for a slot");
    } else if (Job::Clock::now() >= job->deadline()) {
      job->expire();
      res = make_error("timed out while waiting for a slot");
    } else {
      res = engine::generate(
          *slot.ctx, job->prompt(), job->params(),
          [&](std::string_view text) { return job->push_text(text); }, job->cancel_flag());
    }
    {
      // Free the slot before the waiter hears the answer, so that its next turn finds
      // this slot (and its cache) idle.
      std::lock_guard<std::mutex> lock(mutex_);
      slot.cached = slot.ctx->tokens();
      slot.job = stopping_ ? nullptr : pop_queued();
    }
    job->finish(std::move(res));
  }
}

}  // namespace hearth::app
