#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "app/chat_session.h"
#include "app/model_paths.h"

namespace hearth::app {
namespace {

std::string default_model() {
  const char* d = std::getenv("HEARTH_MODELS");
  std::string dir = d ? d : std::string(std::getenv("HOME") ? std::getenv("HOME") : "") + "/.local/share/hearth/models";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

ChatOptions greedy(int64_t n_ctx, int64_t max_tokens) {
  ChatOptions o;
  o.context.n_ctx = n_ctx;
  o.context.n_threads = 2;
  o.generate.sampling.temp = 0;
  o.generate.max_tokens = max_tokens;
  return o;
}

TEST(ChatSession, KeepsTheConversationAndReusesTheCache) {
  if (!std::filesystem::exists(default_model())) GTEST_SKIP() << "default model not present";
  auto m = engine::Model::load(default_model());
  ASSERT_TRUE(m) << m.error();
  auto o = greedy(512, 24);
  o.system_prompt = "You are a helpful assistant. Answer in one sentence.";
  auto chat = ChatSession::create(**m, o);
  ASSERT_TRUE(chat) << chat.error();
  auto r1 = (*chat)->send("What is the capital of France?", nullptr);
  ASSERT_TRUE(r1) << r1.error();
  EXPECT_NE(r1->text.find("Paris"), std::string::npos) << r1->text;
  ASSERT_EQ((*chat)->messages().size(), 3u);  // system, user, assistant
  EXPECT_EQ((*chat)->messages()[2].role, "assistant");
  EXPECT_EQ((*chat)->messages()[2].content, r1->text);

  auto r2 = (*chat)->send("And of Italy?", nullptr);
  ASSERT_TRUE(r2) << r2.error();
  // Only the new part of the conversation is evaluated.
  EXPECT_LT(r2->n_prompt_evaluated, r2->n_prompt / 2) << r2->n_prompt_evaluated << " of " << r2->n_prompt;
  EXPECT_EQ((*chat)->messages().size(), 5u);

  (*chat)->reset();
  ASSERT_EQ((*chat)->messages().size(), 1u);
  EXPECT_EQ((*chat)->messages()[0].role, "system");
  auto prompt = (*chat)->render_prompt();
  ASSERT_TRUE(prompt);
  EXPECT_NE(prompt->find("<|im_start|>system\nYou are a helpful assistant."), std::string::npos);
}

TEST(ChatSession, DropsOldExchangesWhenTheContextIsFull) {
  if (!std::filesystem::exists(default_model())) GTEST_SKIP() << "default model not present";
  auto m = engine::Model::load(default_model());
  ASSERT_TRUE(m) << m.error();
  auto chat = ChatSession::create(**m, greedy(128, 8));
  ASSERT_TRUE(chat) << chat.error();
  for (int i = 0; i < 4; ++i) {
    auto r = (*chat)->send("Tell me one fact about the number " + std::to_string(i) + ".", nullptr);
    ASSERT_TRUE(r) << "turn " << i << ": " << r.error();
  }
  EXPECT_GT((*chat)->dropped_messages(), 0);
  EXPECT_EQ((*chat)->messages().back().role, "assistant");

  // One message longer than the whole context is an error, and the conversation is kept.
  const size_t before = (*chat)->messages().size();
  std::string huge;
  for (int i = 0; i < 200; ++i) huge += "word ";
  auto r = (*chat)->send(huge, nullptr);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("too long"), std::string::npos) << r.error();
  EXPECT_EQ((*chat)->messages().size(), before);
}

TEST(ModelPaths, ResolvesNamesInTheModelDirectory) {
  const std::string dir = ::testing::TempDir() + "/hearth-models";
  std::filesystem::create_directories(dir);
  for (const char* f : {"alpha-1b.Q4_0.gguf", "beta.gguf", "beta-2.gguf"}) {
    std::FILE* fp = std::fopen((dir + "/" + f).c_str(), "w");
    ASSERT_NE(fp, nullptr);
    std::fclose(fp);
  }
  setenv("HEARTH_MODELS", dir.c_str(), 1);
  EXPECT_EQ(*resolve_model("alpha"), dir + "/alpha-1b.Q4_0.gguf");  // unique prefix
  EXPECT_EQ(*resolve_model("beta"), dir + "/beta.gguf");            // exact name wins
  EXPECT_EQ(*resolve_model("beta-2.gguf"), dir + "/beta-2.gguf");
  auto amb = resolve_model("b");
  ASSERT_FALSE(amb);
  EXPECT_NE(amb.error().find("ambiguous"), std::string::npos);
  auto none = resolve_model("gamma");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("unknown model 'gamma'"), std::string::npos);
  auto def = resolve_model("");
  ASSERT_FALSE(def);
  EXPECT_NE(def.error().find("fetch_models.py"), std::string::npos);
  unsetenv("HEARTH_MODELS");
}

}  // namespace
}  // namespace hearth::app
