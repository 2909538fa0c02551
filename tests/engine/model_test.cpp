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

TEST(ModelLoad, RejectsNonModels) {
  auto m = Model::load("/nonexistent.gguf");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace hearth::engine
