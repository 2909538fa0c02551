// The invariants written at the top of app/server_scheduler.h, one test each, on the
// real default model (greedy, so that an answer can be compared with itself run alone).
#include "app/server_scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "../support/default_model.h"

namespace hearth::app {
namespace {

using namespace std::chrono_literals;

using test_support::default_model;

class SchedulerInvariants : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(default_model())) return;
    auto m = engine::Model::load(default_model());
    ASSERT_TRUE(m) << m.error();
    model_ = std::move(*m).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << default_model() << " not present (run scripts/fetch_models.py)";
  }

  static std::unique_ptr<Scheduler> scheduler(int n_slots, int queue_max, int64_t n_batch = 64) {
    SchedulerOptions o;
    o.n_slots = n_slots;
    o.queue_max = queue_max;
    o.context.n_ctx = 512;
    o.context.n_batch = n_batch;
    o.context.n_threads = 2;
    auto s = Scheduler::create(*model_, o);
    EXPECT_TRUE(s) << s.error();
    return s ? std::move(*s) : nullptr;
  }
  static std::vector<int32_t> tokens(const std::string& text, bool bos = true) {
    return model_->tokenizer().encode(text, bos, false);
  }
  // A greedy job; counting prompts keep a small model going until max_tokens.
  static std::shared_ptr<Job> job(std::vector<int32_t> prompt, int64_t max_tokens,
                                  Job::Clock::duration timeout = 120s) {
    engine::GenerateParams p;
    p.sampling.temp = 0;
    p.max_tokens = max_tokens;
    return std::make_shared<Job>(std::move(prompt), p, Job::Clock::now() + timeout);
  }
  // Takes the job's text until it finishes, within `limit` (a hang fails the test instead
  // of blocking it); returns whether it finished.
  static bool drain(Job& j, std::string& text, Job::Clock::duration limit = 120s) {
    const auto until = Job::Clock::now() + limit;
    while (Job::Clock::now() < until)
      if (j.wait_next(text, 50ms)) return true;
    return false;
  }
  // Waits for the job's first text (it is decoding).
  static bool first_text(Job& j, std::string& text) {
    const auto until = Job::Clock::now() + 60s;
    while (text.empty() && Job::Clock::now() < until)
      if (j.wait_next(text, 20ms)) break;
    return !text.empty();
  }
  static std::string alone(Scheduler& s, const std::vector<int32_t>& prompt, int64_t max_tokens) {
    auto j = job(prompt, max_tokens);
    EXPECT_TRUE(s.submit(j));
    std::string text;
    EXPECT_TRUE(drain(*j, text));
    EXPECT_TRUE(j->result()) << j->result().error();
    return text;
  }

  static engine::Model* model_;
};
engine::Model* SchedulerInvariants::model_ = nullptr;

const char* const kCounting = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,";

// Invariant: a slot is busy exactly while `job` is set; an idle slot's `cached` copy of
// its tokens is what routing reads.
TEST_F(SchedulerInvariants, SlotIsBusyExactlyWhileItHoldsAJobAndRoutingReadsItsCache) {
  auto s = scheduler(2, 4);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->stats().busy, 0);
  auto a = job(tokens(kCounting), 400);
  ASSERT_TRUE(s->submit(a));
  std::string text;
  ASSERT_TRUE(first_text(*a, text));
  EXPECT_EQ(s->stats().busy, 1);
  a->cancel();
  ASSERT_TRUE(drain(*a, text));
  ASSERT_TRUE(a->result()) << a->result().error();
  EXPECT_EQ(s->stats().busy, 0);

  // The next turn continues the first job's tokens. The least recently used idle slot is
  // the other one, so only a look at the first slot's cached tokens finds the cache.
  std::vector<int32_t> next = a->prompt();
  next.insert(next.end(), a->result()->tokens.begin(), a->result()->tokens.end());
  const std::vector<int32_t> more = tokens(" 30, 31,", false);
  next.insert(next.end(), more.begin(), more.end());
  auto b = job(next, 4);
  ASSERT_TRUE(s->submit(b));
  ASSERT_TRUE(drain(*b, text));
  ASSERT_TRUE(b->result()) << b->result().error();
  EXPECT_LT(b->result()->n_prompt_evaluated, b->result()->n_prompt / 2)
      << b->result()->n_prompt_evaluated << " of " << b->result()->n_prompt;
  EXPECT_EQ(s->stats().busy, 0);
}

// Invariant: a job is in at most one place: the queue, one slot, or finished.
TEST_F(SchedulerInvariants, JobIsInAtMostOnePlace) {
  auto s = scheduler(1, 4);
  ASSERT_TRUE(s);
  const std::vector<std::vector<int32_t>> prompts = {
      tokens(kCounting), tokens("The capital of France is"), tokens("Water boils at")};
  std::vector<std::string> want;
  for (const auto& p : prompts) want.push_back(alone(*s, p, 12));

  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& p : prompts) jobs.push_back(job(p, 12));
  for (const auto& j : jobs) ASSERT_TRUE(s->submit(j));
  const Scheduler::Stats at_start = s->stats();
  EXPECT_EQ(at_start.busy + at_start.queued, 3);  // nothing can have finished yet
  std::vector<std::string> got(jobs.size());
  std::vector<bool> finished(jobs.size(), false);
  const auto until = Job::Clock::now() + 120s;
  for (;;) {
    int unfinished = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (!finished[i]) finished[i] = jobs[i]->wait_next(got[i], 0ms);
      unfinished += finished[i] ? 0 : 1;
    }
    // Counted after the jobs: only more of them can have finished since.
    const Scheduler::Stats st = s->stats();
    ASSERT_LE(st.busy + st.queued, unfinished);
    if (unfinished == 0) break;
    ASSERT_LT(Job::Clock::now(), until) << "jobs did not finish";
    std::this_thread::sleep_for(2ms);
  }
  const Scheduler::Stats at_end = s->stats();
  EXPECT_EQ(at_end.busy + at_end.queued, 0);
  // Each ran once, whole: its text is the text it makes alone.
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_TRUE(jobs[i]->result()) << jobs[i]->result().error();
    EXPECT_EQ(got[i], want[i]) << "job " << i;
  }
}

// Invariant: every submitted job is finished exactly once (result, cancellation, timeout
// or shutdown), so a waiter never hangs and a slot never leaks; the slot is freed before
// the waiter hears the end.
TEST_F(SchedulerInvariants, EveryJobFinishesOnceWhateverEndsIt) {
  auto s = scheduler(1, 4);
  ASSERT_TRUE(s);
  // The slot is free by the time its waiter hears the end.
  for (int i = 0; i < 3; ++i) {
    auto j = job(tokens("Water boils at"), 4);
    ASSERT_TRUE(s->submit(j));
    std::string text;
    ASSERT_TRUE(drain(*j, text));
    EXPECT_EQ(s->stats().busy, 0) << "turn " << i;
  }

  auto running = job(tokens(kCounting), 400);
  auto cancelled_in_queue = job(tokens("a"), 4);
  auto late = job(tokens("b"), 4, -1s);  // its deadline passes while it waits
  auto result = job(tokens("Water boils at"), 4);
  ASSERT_TRUE(s->submit(running));
  std::string text;
  ASSERT_TRUE(first_text(*running, text));
  ASSERT_TRUE(s->submit(cancelled_in_queue));
  ASSERT_TRUE(s->submit(late));
  ASSERT_TRUE(s->submit(result));
  cancelled_in_queue->cancel();
  running->cancel();
  ASSERT_TRUE(drain(*running, text));
  ASSERT_TRUE(running->result()) << running->result().error();
  EXPECT_EQ(running->result()->reason, engine::StopReason::kCancelled);
  ASSERT_TRUE(drain(*cancelled_in_queue, text));
  EXPECT_FALSE(cancelled_in_queue->result());
  ASSERT_TRUE(drain(*late, text));
  EXPECT_FALSE(late->result());
  EXPECT_TRUE(late->expired());
  ASSERT_TRUE(drain(*result, text));
  EXPECT_TRUE(result->result()) << result->result().error();

  // Shutdown finishes what runs and what waits.
  auto cut = job(tokens(kCounting), 400);
  auto waiting = job(tokens("c"), 4);
  ASSERT_TRUE(s->submit(cut));
  text.clear();
  ASSERT_TRUE(first_text(*cut, text));
  ASSERT_TRUE(s->submit(waiting));
  s->stop();
  ASSERT_TRUE(drain(*cut, text));
  ASSERT_TRUE(drain(*waiting, text));
  EXPECT_FALSE(waiting->result());
  EXPECT_FALSE(s->submit(job(tokens("d"), 4)));  // and takes nothing new
  EXPECT_EQ(s->stats().busy + s->stats().queued, 0);
}

// Invariant: a step holds at most n_batch tokens and every busy slot that is decoding has
// its token in it (prefill chunks only take the room that is left).
TEST_F(SchedulerInvariants, DecodingSlotsKeepTheirTokenWhileAnotherPrefills) {
  const int64_t n_batch = 4;
  auto s = scheduler(2, 4, n_batch);
  ASSERT_TRUE(s);
  const std::vector<int32_t> counting = tokens(kCounting);
  std::string long_text;
  for (int i = 0; i < 42; ++i) long_text += "The quick brown fox jumps over the lazy dog. ";
  const std::vector<int32_t> long_prompt = tokens(long_text);
  ASSERT_GT(long_prompt.size(), 350u);
  ASSERT_LT(long_prompt.size(), 500u);
  const int64_t decode_tokens = 24;
  const std::string want = alone(*s, counting, decode_tokens);

  auto decoding = job(counting, decode_tokens);
  ASSERT_TRUE(s->submit(decoding));
  std::string text;
  ASSERT_TRUE(first_text(*decoding, text));
  auto prefilling = job(long_prompt, 2);
  ASSERT_TRUE(s->submit(prefilling));
  ASSERT_TRUE(drain(*decoding, text));
  // The long prompt needs more than a hundred steps with n_batch - 1 tokens each; the
  // decoding job, given its token in every step, ends well before that.
  std::string prefill_text;
  EXPECT_FALSE(prefilling->wait_next(prefill_text, 0ms));
  EXPECT_TRUE(prefill_text.empty()) << prefill_text;
  ASSERT_TRUE(decoding->result()) << decoding->result().error();
  EXPECT_EQ(decoding->result()->n_decoded, decode_tokens);
  EXPECT_EQ(text, want);
  // A step past n_batch would have failed the job ("tokens in one batch").
  ASSERT_TRUE(drain(*prefilling, prefill_text));
  ASSERT_TRUE(prefilling->result()) << prefilling->result().error();
  EXPECT_EQ(prefilling->result()->n_prompt_evaluated, static_cast<int64_t>(long_prompt.size()));
}

}  // namespace
}  // namespace hearth::app
