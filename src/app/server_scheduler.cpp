#include "app/server_scheduler.h"

#include <algorithm>

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
  s->model_ = &model;
  s->queue_max_ = options.queue_max;
  engine::ContextParams cp = options.context;
  cp.n_batch = std::max<int64_t>(cp.n_batch, options.n_slots);  // room for every slot's token
  auto eval = engine::Evaluator::create(model, cp, options.n_slots);
  if (!eval) return Error{eval.error()};
  s->eval_ = std::move(*eval);
  s->threads_ = s->eval_->n_threads();
  s->n_ctx_ = s->eval_->n_ctx();
  for (int i = 0; i < options.n_slots; ++i) {
    auto seq = s->eval_->new_sequence();
    if (!seq) return make_error("slot {}: {}", i, seq.error());
    auto slot = std::make_unique<Slot>();
    slot->seq = std::move(*seq);
    s->slots_.push_back(std::move(slot));
  }
  const size_t n = static_cast<size_t>(options.n_slots);
  s->logits_.resize(n * static_cast<size_t>(model.hparams().n_vocab));
  s->items_.reserve(n);
  s->item_slots_.reserve(n);
  s->busy_.reserve(n);
  Scheduler* self = s.get();
  s->engine_ = std::thread([self] { self->run(); });
  return s;
}

Scheduler::~Scheduler() {
  stop();
  if (engine_.joinable()) engine_.join();
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

void Scheduler::begin(Slot& slot) {
  Job& job = *slot.running;
  if (!job.cancelled() && Job::Clock::now() >= job.deadline()) job.expire();
  if (job.cancelled())
    return retire(slot, Error{job.expired() ? "timed out while waiting for a slot" : "cancelled"});
  Job* j = slot.running.get();  // outlives the Generation: retire() drops it last
  slot.gen = std::make_unique<engine::Generation>(
      *model_, job.params(), [j](std::string_view text) { return j->push_text(text); },
      job.cancel_flag());
  auto rest = slot.gen->start(*slot.seq, job.prompt());
  if (!rest) return retire(slot, Error{rest.error()});
  slot.pending = std::move(*rest);
  slot.pending_at = 0;
}

void Scheduler::retire(Slot& slot, Expected<engine::GenerateResult> result) {
  slot.gen.reset();
  slot.pending.clear();
  slot.pending_at = 0;
  std::shared_ptr<Job> job = std::move(slot.running);
  {
    // Free the slot before the waiter hears the answer, so that its next turn finds
    // this slot (and its cache) idle.
    std::lock_guard<std::mutex> lock(mutex_);
    slot.cached = slot.seq->tokens();
    slot.job = stopping_ ? nullptr : pop_queued();
  }
  job->finish(std::move(result));
}

void Scheduler::run() {
  const int64_t n_vocab = model_->hparams().n_vocab;
  for (;;) {
    busy_.clear();
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto any_busy = [&] {
        return std::any_of(slots_.begin(), slots_.end(),
                           [](const auto& sl) { return sl->job != nullptr; });
      };
      cv_.wait(lock, [&] { return stopping_ || any_busy(); });
      for (auto& slot : slots_) {
        if (!slot->job) continue;
        if (!slot->running) slot->running = slot->job;  // joined since the last step
        busy_.push_back(slot.get());
      }
      if (busy_.empty()) return;  // stopping, and every job has finished
    }

    // New jobs start; cancelled and late ones leave before the step.
    const auto now = Job::Clock::now();
    for (Slot* slot : busy_) {
      if (!slot->gen) begin(*slot);
      if (!slot->gen) continue;
      if (now >= slot->running->deadline()) slot->running->expire();
      if (slot->running->cancelled()) retire(*slot, slot->gen->finish());
    }

    // One step: each decoding slot's next token, then prompt chunks in the room left.
    items_.clear();
    item_slots_.clear();
    int64_t room = eval_->n_batch();
    for (Slot* slot : busy_) {
      if (!slot->gen || slot->pending_at < slot->pending.size()) continue;
      items_.push_back({slot->seq.get(), &slot->next_token, 1, engine::LogitsRows::kLast, nullptr});
      item_slots_.push_back(slot);
      --room;
    }
    for (Slot* slot : busy_) {
      if (!slot->gen || slot->pending_at == slot->pending.size() || room == 0) continue;
      const int64_t left = static_cast<int64_t>(slot->pending.size() - slot->pending_at);
      const int64_t n = std::min(room, left);
      items_.push_back({slot->seq.get(), slot->pending.data() + slot->pending_at, n,
                        n == left ? engine::LogitsRows::kLast : engine::LogitsRows::kNone,
                        nullptr});
      item_slots_.push_back(slot);
      room -= n;
    }
    if (items_.empty()) continue;
    if (Status st = eval_->step(items_.data(), static_cast<int>(items_.size()), logits_.data());
        !st) {
      for (Slot* slot : item_slots_) retire(*slot, Error{st.error()});
      continue;
    }

    // Sample from each row; answers that have ended leave.
    float* row = logits_.data();
    for (size_t j = 0; j < items_.size(); ++j) {
      Slot& slot = *item_slots_[j];
      if (slot.pending_at < slot.pending.size())
        slot.pending_at += static_cast<size_t>(items_[j].n_tokens);
      if (items_[j].logits == engine::LogitsRows::kNone) continue;
      const int32_t id = slot.gen->next(row, *slot.seq);
      row += n_vocab;
      if (id < 0) {
        retire(slot, slot.gen->finish());
      } else {
        slot.next_token = id;
      }
    }
  }
}

}  // namespace hearth::app
