// The llama forward pass, the context and the generator on the real default model.
// (Numerical agreement with the references lives in tests/python/test_forward.py; these
// tests check the engine's own invariants and run under ASan/UBSan in CI.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "engine/generator.h"
#include "engine/model.h"

namespace hearth::engine {
namespace {

std::string default_model() {
  const char* d = std::getenv("HEARTH_MODELS");
  std::string dir = d ? d : std::string(std::getenv("HOME") ? std::getenv("HOME") : "") + "/.local/share/hearth/models";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

class ModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(default_model())) return;
    auto m = Model::load(default_model());
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
  std::unique_ptr<Context> context(int64_t n_ctx, int64_t n_batch = 64) {
    ContextParams p;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 2;
    auto c = Context::create(*model_, p);
    EXPECT_TRUE(c) << c.error();
    return std::move(*c);
  }
  static Model* model_;
};
Model* ModelTest::model_ = nullptr;

const std::vector<int32_t> kPrompt = {1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198};

float max_abs_diff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

TEST_F(ModelTest, HyperparametersOfSmolLM2) {
  const HParams& hp = model_->hparams();
  EXPECT_EQ(hp.arch, "llama");
  EXPECT_EQ(hp.n_layer, 30);
  EXPECT_EQ(hp.n_embd, 576);
  EXPECT_EQ(hp.n_head, 9);
  EXPECT_EQ(hp.n_head_kv, 3);
  EXPECT_EQ(hp.head_dim, 64);
  EXPECT_EQ(hp.n_vocab, 49152);
  EXPECT_FLOAT_EQ(hp.rope_base, 100000.0f);
  EXPECT_TRUE(model_->chat_template().has_value());
}

TEST_F(ModelTest, BatchedAndTokenByTokenEvaluationAgree) {
  const int64_t V = model_->hparams().n_vocab;
  auto batched = context(64, 64);
  ASSERT_TRUE(batched->eval(kPrompt));
  std::vector<float> a(batched->logits(), batched->logits() + V);

  auto chunked = context(64, 5);  // prompt split into batches of 5
  ASSERT_TRUE(chunked->eval(kPrompt));
  auto single = context(64, 64);
  for (int32_t t : kPrompt) ASSERT_TRUE(single->eval({t}));

  EXPECT_LT(max_abs_diff(a.data(), chunked->logits(), V), 1e-3f);
  EXPECT_LT(max_abs_diff(a.data(), single->logits(), V), 1e-3f);
  EXPECT_EQ(argmax(a.data(), V), 504);  // "The" (capital of France is Paris)
  EXPECT_EQ(single->n_past(), static_cast<int64_t>(kPrompt.size()));
}

TEST_F(ModelTest, AllLogitsMatchLastLogits) {
  const int64_t V = model_->hparams().n_vocab;
  auto c = context(64);
  ASSERT_TRUE(c->eval(kPrompt, true));
  std::vector<float> all(c->logits(), c->logits() + V * static_cast<int64_t>(kPrompt.size()));
  auto d = context(64);
  ASSERT_TRUE(d->eval(kPrompt));
  EXPECT_LT(max_abs_diff(all.data() + V * (static_cast<int64_t>(kPrompt.size()) - 1), d->logits(), V), 1e-3f);
}

TEST_F(ModelTest, TruncateThenReevaluateGivesTheSameLogits) {
  const int64_t V = model_->hparams().n_vocab;
  auto c = context(64);
  ASSERT_TRUE(c->eval(kPrompt));
  std::vector<float> first(c->logits(), c->logits() + V);
  ASSERT_TRUE(c->eval({504, 3575}));  // continue a little
  c->truncate(static_cast<int64_t>(kPrompt.size()) - 3);
  EXPECT_EQ(c->tokens().size(), kPrompt.size() - 3);
  ASSERT_TRUE(c->eval(std::vector<int32_t>(kPrompt.end() - 3, kPrompt.end())));
  EXPECT_LT(max_abs_diff(first.data(), c->logits(), V), 1e-3f);
}

TEST_F(ModelTest, FullContextIsAnErrorAndChangesNothing) {
  auto c = context(16);
  ASSERT_TRUE(c->eval(std::vector<int32_t>(kPrompt.begin(), kPrompt.begin() + 10)));
  Status s = c->eval(std::vector<int32_t>(kPrompt.begin(), kPrompt.begin() + 7));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("context is full"), std::string::npos) << s.error();
  EXPECT_EQ(c->n_past(), 10);
  EXPECT_FALSE(c->eval({}));
  EXPECT_FALSE(c->eval({-1}));
  EXPECT_FALSE(c->eval({49152}));
  EXPECT_EQ(c->n_past(), 10);
}

TEST_F(ModelTest, GreedyGenerationAnswersParisAndStops) {
  auto c = context(64);
  GenerateParams gp;
  gp.sampling.temp = 0;
  gp.max_tokens = 32;
  std::string streamed;
  auto r = generate(*c, kPrompt, gp, [&](std::string_view t) { streamed += t; return true; });
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->text, "The capital of France is Paris.");
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->reason, StopReason::kEndOfGeneration);
  EXPECT_EQ(r->n_prompt_evaluated, static_cast<int64_t>(kPrompt.size()));

  // The same prompt again reuses the whole cached prefix but the last token.
  auto r2 = generate(*c, kPrompt, gp, nullptr);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->n_prompt_evaluated, 1);
  EXPECT_EQ(r2->text, r->text);
}

TEST_F(ModelTest, GenerationStopsAtMaxTokensStopStringsAndFullContext) {
  GenerateParams gp;
  gp.sampling.temp = 0;
  gp.max_tokens = 3;
  auto c = context(64);
  auto r = generate(*c, kPrompt, gp, nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, StopReason::kMaxTokens);
  EXPECT_EQ(r->tokens.size(), 3u);

  gp.max_tokens = 32;
  gp.stop = {" France"};
  r = generate(*c, kPrompt, gp, nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, StopReason::kStopString);
  EXPECT_EQ(r->text, "The capital of");

  gp.stop.clear();
  auto small = context(static_cast<int64_t>(kPrompt.size()) + 2);
  r = generate(*small, kPrompt, gp, nullptr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, StopReason::kContextFull);
  EXPECT_LE(small->n_past(), small->n_ctx());

  auto tiny = context(8);
  EXPECT_FALSE(generate(*tiny, kPrompt, gp, nullptr));  // the prompt alone does not fit
}

TEST_F(ModelTest, CancelFlagStopsGeneration) {
  GenerateParams gp;
  gp.sampling.temp = 0;
  gp.max_tokens = 32;
  std::atomic<bool> cancel{false};
  int pieces = 0;
  auto c = context(64);
  auto r = generate(*c, kPrompt, gp, [&](std::string_view) {
    if (++pieces == 2) cancel = true;
    return true;
  }, &cancel);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, StopReason::kCancelled);
  EXPECT_LE(r->tokens.size(), 4u);
}

TEST_F(ModelTest, SameSeedSameSample) {
  GenerateParams gp;
  gp.sampling.temp = 1.0f;
  gp.sampling.seed = 7;
  gp.max_tokens = 12;
  auto c1 = context(64);
  auto c2 = context(64);
  auto a = generate(*c1, kPrompt, gp, nullptr);
  auto b = generate(*c2, kPrompt, gp, nullptr);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->tokens, b->tokens);
}

// Three sequences decoded greedily together in one forward pass per step (the third
// joins at step 2 with its whole prompt as a chunk beside the others' decode rows) give
// the same tokens and bit-identical logits as each decoded alone: the matmuls quantize
// activations per row and sum each row's dot products in the same order whatever the
// number of rows, and attention reads only the row's own cache. (A kernel that summed
// differently for several rows would make this a tolerance; it would show here first.)
TEST_F(ModelTest, BatchedStepMatchesEachSequenceAlone) {
  const int64_t V = model_->hparams().n_vocab;
  const Tokenizer& tok = model_->tokenizer();
  const std::vector<std::vector<int32_t>> prompts = {kPrompt, tok.encode("Once upon a time, in a small", true, false),
                                                     tok.encode("def fibonacci(n):", true, false)};
  const int start_step[] = {0, 0, 2};
  constexpr int kSteps = 8;

  std::vector<std::vector<int32_t>> alone_ids(3);
  std::vector<std::vector<float>> alone_logits(3);  // [kSteps, V] each
  for (size_t s = 0; s < 3; ++s) {
    auto c = context(64);
    ASSERT_TRUE(c->eval(prompts[s]));
    for (int k = 0; k < kSteps; ++k) {
      alone_logits[s].insert(alone_logits[s].end(), c->logits(), c->logits() + V);
      alone_ids[s].push_back(argmax(c->logits(), V));
      ASSERT_TRUE(c->eval({alone_ids[s].back()}));
    }
  }

  ContextParams p;
  p.n_ctx = 64;
  p.n_batch = 64;
  p.n_threads = 2;
  auto ev = Evaluator::create(*model_, p, 3);
  ASSERT_TRUE(ev) << ev.error();
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int s = 0; s < 3; ++s) {
    auto sq = (*ev)->new_sequence();
    ASSERT_TRUE(sq) << sq.error();
    seqs.push_back(std::move(*sq));
  }
  std::vector<std::vector<int32_t>> ids(3);
  std::vector<float> logits(3 * V);
  float worst = 0;
  for (int step = 0; step < kSteps + 2; ++step) {
    std::vector<Evaluator::Item> items;
    std::vector<size_t> who;
    for (size_t s = 0; s < 3; ++s) {
      if (step == start_step[s]) {
        items.push_back({seqs[s].get(), prompts[s].data(), static_cast<int64_t>(prompts[s].size())});
      } else if (step > start_step[s] && ids[s].size() < kSteps) {
        items.push_back({seqs[s].get(), &ids[s].back(), 1});
      } else {
        continue;
      }
      who.push_back(s);
    }
    ASSERT_TRUE((*ev)->step(items.data(), static_cast<int>(items.size()), logits.data()));
    for (size_t j = 0; j < who.size(); ++j) {
      const size_t s = who[j];
      const float* row = logits.data() + j * V;
      worst = std::max(worst, max_abs_diff(row, alone_logits[s].data() + ids[s].size() * V, V));
      ids[s].push_back(argmax(row, V));
    }
  }
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ(ids[s], alone_ids[s]) << "sequence " << s;
    EXPECT_EQ(seqs[s]->n_past(), static_cast<int64_t>(prompts[s].size()) + kSteps - 1);
  }
  EXPECT_EQ(worst, 0.0f) << "batched and single-sequence logits differ";

  // Bad batches change nothing.
  Evaluator::Item twice[] = {{seqs[0].get(), kPrompt.data(), 1}, {seqs[0].get(), kPrompt.data(), 1}};
  EXPECT_FALSE((*ev)->step(twice, 2, logits.data()));
  std::vector<int32_t> many(65, 1);
  Evaluator::Item too_many[] = {{seqs[1].get(), many.data(), 65}};
  EXPECT_FALSE((*ev)->step(too_many, 1, logits.data()));
  EXPECT_EQ(seqs[0]->n_past(), static_cast<int64_t>(prompts[0].size()) + kSteps - 1);
}

TEST_F(ModelTest, EmbeddingIsDeterministicUnitNormAndDependsOnTheText) {
  const Tokenizer& tok = model_->tokenizer();
  const std::vector<int32_t> a = tok.encode("The cat sat on the mat.", false, false);
  const std::vector<int32_t> b = tok.encode("Quarterly revenue rose by four percent.", false, false);
  auto c = context(64);
  std::vector<float> ea, ea2, eb;
  ASSERT_TRUE(c->embed(a, ea));
  ASSERT_TRUE(c->eval(kPrompt));  // whatever the cache holds, embed starts from empty
  ASSERT_TRUE(c->embed(a, ea2));
  ASSERT_TRUE(c->embed(b, eb));
  EXPECT_EQ(c->tokens(), b);  // the cache holds the last input
  ASSERT_EQ(ea.size(), static_cast<size_t>(model_->hparams().n_embd));
  EXPECT_EQ(ea, ea2);
  double na = 0, dot = 0;
  for (size_t i = 0; i < ea.size(); ++i) {
    na += double(ea[i]) * ea[i];
    dot += double(ea[i]) * eb[i];
  }
  EXPECT_NEAR(na, 1.0, 1e-5);
  EXPECT_LT(dot, 0.99);  // cosine similarity of two unrelated sentences
  EXPECT_GT(max_abs_diff(ea.data(), eb.data(), static_cast<int64_t>(ea.size())), 1e-2f);

  auto chunked = context(64, 3);  // the input in batches of 3 gives the same mean
  std::vector<float> ec;
  ASSERT_TRUE(chunked->embed(a, ec));
  EXPECT_LT(max_abs_diff(ea.data(), ec.data(), static_cast<int64_t>(ea.size())), 1e-3f);

  std::vector<float> untouched{1.0f};
  EXPECT_FALSE(c->embed({}, untouched));
  EXPECT_FALSE(c->embed(std::vector<int32_t>(65, 1), untouched));
  EXPECT_FALSE(c->embed({49152}, untouched));
  EXPECT_EQ(untouched, std::vector<float>{1.0f});

  // Cancellation is asked before each n_batch chunk: the second of three stops it.
  int asked = 0;
  const Status s = chunked->embed(a, untouched, [&] { return ++asked == 2; });
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("cancelled after 3 of"), std::string::npos) << s.error();
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(untouched, std::vector<float>{1.0f});
  ASSERT_TRUE(chunked->embed(a, ec, [] { return false; }));  // and the context still works
  EXPECT_LT(max_abs_diff(ea.data(), ec.data(), static_cast<int64_t>(ea.size())), 1e-3f);
}

TEST(ModelLoad, RejectsNonModels) {
  auto m = Model::load("/nonexistent.gguf");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace hearth::engine
