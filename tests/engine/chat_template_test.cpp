// ChatTemplate against jinja2: every case of tests/data/templates/golden.json (made by
// scripts/golden/make_template_golden.py) must render byte for byte, or fail with the
// same raise_exception message; plus error and resource-limit behaviour.
#include "engine/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace hearth::engine {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kDir = std::string(HEARTH_TEST_DATA) + "/templates/";

Expected<std::string> render(std::string_view source, const nlohmann::ordered_json& ctx = {}) {
  auto t = ChatTemplate::parse(source);
  if (!t) return Error{t.error()};
  return t->render(ctx.is_null() ? nlohmann::ordered_json::object() : ctx);
}

TEST(ChatTemplate, MatchesJinja2Golden) {
  std::string text = read_file(kDir + "golden.json");
  ASSERT_FALSE(text.empty()) << "missing " << kDir << "golden.json";
  auto golden = nlohmann::ordered_json::parse(text);
  int checked = 0, errors = 0;
  for (const auto& c : golden["cases"]) {
    std::string tname = c["template"].get<std::string>();
    std::string source =
        c.contains("source") ? c["source"].get<std::string>() : read_file(kDir + tname + ".jinja");
    ASSERT_FALSE(source.empty()) << tname;
    std::string label = tname + " / " + c["case"].get<std::string>();
    auto tpl = ChatTemplate::parse(source);
    ASSERT_TRUE(tpl.has_value()) << label << ": " << tpl.error();
    auto out = tpl->render(c["context"]);
    if (c.contains("output")) {
      ASSERT_TRUE(out.has_value()) << label << ": " << out.error();
      EXPECT_EQ(*out, c["output"].get<std::string>()) << label;
    } else {
      ASSERT_FALSE(out.has_value()) << label << " rendered: " << *out;
      EXPECT_NE(out.error().find(c["error"].get<std::string>()), std::string::npos)
          << label << ": " << out.error();
      ++errors;
    }
    ++checked;
  }
  EXPECT_GE(checked, 150);
  EXPECT_GE(errors, 10);
}

TEST(ChatTemplate, ApplyBuildsTheUsualContext) {
  auto t = ChatTemplate::parse(read_file(kDir + "smollm2-135m-instruct.jinja"));
  ASSERT_TRUE(t.has_value()) << t.error();
  auto out = t->apply({{"user", "Hi"}}, true, "<s>", "</s>");
  ASSERT_TRUE(out.has_value()) << out.error();
  EXPECT_EQ(*out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
            "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, PlainJsonContextWorks) {
  auto t = ChatTemplate::parse("{{ a }}-{{ b | length }}");
  ASSERT_TRUE(t.has_value());
  auto out = t->render(nlohmann::json{{"a", 1}, {"b", "xyz"}});
  ASSERT_TRUE(out.has_value()) << out.error();
  EXPECT_EQ(*out, "1-3");
}

TEST(ChatTemplate, RaiseExceptionIsAnErrorWithItsMessage) {
  auto out = render("a\n{{ raise_exception('roles must alternate') }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("roles must alternate"), std::string::npos) << out.error();
  EXPECT_NE(out.error().find("line 2"), std::string::npos) << out.error();
}

TEST(ChatTemplate, UnknownFilterIsAnError) {
  auto out = render("{{ 'x' | frobnicate }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("unknown filter 'frobnicate'"), std::string::npos) << out.error();
}

TEST(ChatTemplate, UnknownTestIsAnError) {
  auto out = render("{{ 1 is prime }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("unknown test 'prime'"), std::string::npos) << out.error();
}

TEST(ChatTemplate, UnclosedTagsAreParseErrors) {
  for (const char* src : {"{{ x", "{% if x %}", "{% for x in y %}a", "{# c", "{% raw %}x",
                          "{{ (1 }}", "{% if %}", "{% endif %}", "{{ 'abc }}"}) {
    auto t = ChatTemplate::parse(src);
    EXPECT_FALSE(t.has_value()) << src;
  }
  auto t = ChatTemplate::parse("line1\n{% if x %}");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.error().find("endif"), std::string::npos) << t.error();
}

TEST(ChatTemplate, UnsupportedTagNamesTheTagAndLine) {
  auto t = ChatTemplate::parse("x\n\n{% include 'other.jinja' %}");
  ASSERT_FALSE(t.has_value());
  EXPECT_NE(t.error().find("unsupported tag 'include'"), std::string::npos) << t.error();
  EXPECT_NE(t.error().find("line 3"), std::string::npos) << t.error();
}

TEST(ChatTemplate, UndefinedAttributeOfUndefinedIsAnError) {
  auto out = render("{{ nope.attr }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("'nope' is undefined"), std::string::npos) << out.error();
  auto ok = render("[{{ nope }}]{{ nope is defined }}");
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(*ok, "[]False");
}

TEST(ChatTemplate, TypeErrorsAreErrors) {
  EXPECT_FALSE(render("{{ 1 + 'a' }}").has_value());
  EXPECT_FALSE(render("{{ 1 / 0 }}").has_value());
  EXPECT_FALSE(render("{{ [] < 1 }}").has_value());
  EXPECT_FALSE(render("{% for x in 3 %}{% endfor %}").has_value());
  EXPECT_FALSE(render("{{ [1].append(2) }}").has_value());  // immutable sandbox
}

TEST(ChatTemplate, EndlessLoopsHitTheStepLimit) {
  auto out =
      render("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("step limit"), std::string::npos) << out.error();
}

TEST(ChatTemplate, HugeRangeIsRefused) {
  auto out = render("{{ range(1000000000) | length }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("range()"), std::string::npos) << out.error();
}

TEST(ChatTemplate, ExponentialStringsHitTheSizeLimit) {
  auto out = render(
      "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}"
      "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("too large"), std::string::npos) << out.error();
  EXPECT_FALSE(render("{{ 'x' * 1000000000 }}").has_value());
}

TEST(ChatTemplate, DeepNestingIsAnErrorNotACrash) {
  std::string deep(5000, '(');
  EXPECT_FALSE(
      ChatTemplate::parse("{{ " + deep + "1" + std::string(5000, ')') + " }}").has_value());
  std::string ifs;
  for (int k = 0; k < 1000; ++k) ifs += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::parse(ifs).has_value());
  auto out = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("nested too deeply"), std::string::npos) << out.error();
}

TEST(ChatTemplate, SelfContainingNamespaceIsAnErrorNotACrash) {
  auto out = render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}");
  ASSERT_FALSE(out.has_value());
  EXPECT_NE(out.error().find("nested too deeply"), std::string::npos) << out.error();
  auto ok = render("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns.me.me.a }}");
  ASSERT_TRUE(ok.has_value()) << ok.error();
  EXPECT_EQ(*ok, "1");
}

TEST(ChatTemplate, RenderIsRepeatableAndIndependent) {
  auto t = ChatTemplate::parse("{% set ns = namespace(n=0) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}");
  ASSERT_TRUE(t.has_value());
  auto a = t->render(nlohmann::ordered_json::object());
  auto b = t->render(nlohmann::ordered_json::object());
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(*a, "1");
  EXPECT_EQ(*b, "1");
}

}  // namespace
}  // namespace hearth::engine
