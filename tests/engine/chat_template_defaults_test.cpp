// Fallback chat templates for GGUFs without tokenizer.chat_template: the Gemma 3 one is
// the vendor template that the jinja2 goldens use, byte for byte, and renders the Gemma
// turn format with the system prompt folded into the first user turn.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "engine/chat_template.h"

namespace hearth::engine {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(DefaultChatTemplate, Gemma3IsTheVendorTemplateOfTheGoldens) {
  const std::string want = read_file(std::string(HEARTH_TEST_DATA) + "/templates/gemma-3-it.jinja");
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(default_chat_template("gemma3"), want);
}

TEST(DefaultChatTemplate, NoneForArchitecturesWhoseFilesCarryOne) {
  EXPECT_TRUE(default_chat_template("llama").empty());
  EXPECT_TRUE(default_chat_template("").empty());
}

TEST(DefaultChatTemplate, Gemma3FoldsTheSystemPromptIntoTheFirstUserTurn) {
  auto t = ChatTemplate::parse(default_chat_template("gemma3"));
  ASSERT_TRUE(t.has_value()) << t.error();
  auto out = t->apply({{"system", "Be brief."}, {"user", " Hi "}, {"assistant", "Hello."}, {"user", "Bye"}},
                      true, "<bos>", "<eos>");
  ASSERT_TRUE(out.has_value()) << out.error();
  EXPECT_EQ(*out,
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n"
            "<start_of_turn>model\n");
}

}  // namespace
}  // namespace hearth::engine
