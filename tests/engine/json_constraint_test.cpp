// JSON mode: the byte recogniser (valid and invalid documents, every prefix, no dead ends,
// limits, UTF-8) and the token filter (exact against a brute-force walk of every token, on a
// small vocabulary and on the real SmolLM2 one; generation with the real model gives JSON
// that parses, greedy and sampled).
#include "engine/json_constraint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../support/fake_tokenizer.h"
#include "engine/generator.h"
#include "engine/model.h"

namespace hearth::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool accepts_whole(std::string_view doc, JsonLimits limits = {}) {
  JsonRecognizer r(limits);
  return r.feed(doc) && r.complete();
}

const char* const kValid[] = {
    "{}",
    "{ }",
    " \t\r\n{}",
    "{}\n",
    R"({"a":1})",
    R"({"a" : [1, -2, 3.25, -0.5e10, 1E+2, 0e-0, 0, -0, 12.0e07, 1e99, -1E-99, 0.1e+01]})",
    R"({"":""})",
    R"({"t":true,"f":false,"n":null,"o":{},"a":[],"aa":[[],[{}]]})",
    R"({"esc":"\" \\ \/ \b \f \n \r \t \u0000 \u00e9 \uFFFF \ud83d\ude00"})",
    "{\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf "
    "\xee\x80\x80\"}",
    "{\"del\":\"\x7f\"}",
    "{\n  \"name\": \"Ada\",\n  \"tags\": [\n    \"x\",\n    \"y\"\n  ],\n  \"n\": 1\n}",
    R"({"a":{"b":{"c":{"d":[1,[2,[3]]]}}}})",
};

TEST(JsonRecognizer, AcceptsValidDocuments) {
  for (const char* doc : kValid) {
    EXPECT_TRUE(accepts_whole(doc)) << doc;
    // Our reading agrees with a full parser's.
    EXPECT_TRUE(nlohmann::json::accept(doc)) << doc;
  }
}

TEST(JsonRecognizer, EveryPrefixOfAValidDocumentIsAcceptedAndIncomplete) {
  for (const char* doc : kValid) {
    const std::string d(doc);
    size_t end = d.size();
    while (end > 0 && (d[end - 1] == '\n' || d[end - 1] == ' ')) --end;  // trailing whitespace
    JsonRecognizer r;
    for (size_t i = 0; i < d.size(); ++i) {
      EXPECT_EQ(r.complete(), i >= end) << d.substr(0, i);
      ASSERT_TRUE(r.feed(static_cast<unsigned char>(d[i]))) << "byte " << i << " of " << d;
    }
    EXPECT_TRUE(r.complete()) << d;
  }
}

TEST(JsonRecognizer, RefusesInvalidDocuments) {
  const std::string bad[] = {
      "",  // incomplete
      "[]",
      "\"s\"",
      "1",
      "true",
      "null",  // the top level must be an object
      "{",
      "{\"a\"",
      "{\"a\":",
      "{\"a\":1",
      "{\"a\":1,}",
      "{,}",
      "{\"a\" 1}",
      "{\"a\"::1}",
      "{a:1}",
      "{'a':1}",
      "{\"a\":1}}",
      "{\"a\":1}x",
      "{}{}",
      "{\"a\":[1,]}",
      "{\"a\":[,1]}",
      "{\"a\":[1}",
      "{\"a\":{]}",
      "{\"a\":01}",
      "{\"a\":-}",
      "{\"a\":1.}",
      "{\"a\":.5}",
      "{\"a\":1e}",
      "{\"a\":1e+}",
      "{\"a\":+1}",
      "{\"a\":--1}",
      "{\"a\":1.2.3}",
      "{\"a\":0x1}",
      "{\"a\":NaN}",
      "{\"a\":Infinity}",
      "{\"a\":tru}",
      "{\"a\":truee}",
      "{\"a\":nul}",
      "{\"a\":True}",
      "{\"a\":\"\\x\"}",
      "{\"a\":\"\\u12\"}",
      "{\"a\":\"\\u12g4\"}",
      "{\"a\":\"\\U0041\"}",
      "{\"a\":\"tab\there\"}",
      "{\"a\":\"nl\nhere\"}",
      "{\"a\":\"\x01\"}",
      "{\"a\":\"unterminated}",
      // surrogates: lone high, lone low, high followed by a non-low, reversed pair
      "{\"a\":\"\\ud83d\"}",
      "{\"a\":\"\\ude00\"}",
      "{\"a\":\"\\ud83d\\u0041\"}",
      "{\"a\":\"\\ude00\\ud83d\"}",
      "{\"a\":\"\\ud83d\\n\"}",
      // UTF-8: stray continuation, overlong, surrogate, past U+10FFFF, bad lead, truncated
      "{\"a\":\"\x80\"}",
      "{\"a\":\"\xc0\x80\"}",
      "{\"a\":\"\xc1\xbf\"}",
      "{\"a\":\"\xe0\x80\x80\"}",
      "{\"a\":\"\xed\xa0\x80\"}",
      "{\"a\":\"\xf0\x80\x80\x80\"}",
      "{\"a\":\"\xf4\x90\x80\x80\"}",
      "{\"a\":\"\xf5\x80\x80\x80\"}",
      "{\"a\":\"\xff\"}",
      "{\"a\":\"\xc3\"}",
      "{\"a\":\"\xe2\x82\"}",
      "{\"a\":\"\xc3\xc3\xa9\"}",
      std::string("{\"a\":\"\0\"}", 8),  // NUL inside a string
      std::string("{\0}", 3),
  };
  for (const std::string& doc : bad) {
    EXPECT_FALSE(accepts_whole(doc)) << doc;
    // A full parser does not take it as an object either.
    const auto j = nlohmann::json::parse(doc, nullptr, false);
    EXPECT_TRUE(j.is_discarded() || !j.is_object()) << doc;
  }
}

// Stricter than the grammar, so that every parser takes the numbers (nlohmann::json refuses
// 9e438, Python makes it inf).
TEST(JsonRecognizer, NumbersStayInsideTheRangeOfADouble) {
  EXPECT_TRUE(accepts_whole("{\"a\":-" + std::string(100, '9') + ".5e99}"));
  EXPECT_TRUE(accepts_whole("{\"a\":0." + std::string(500, '1') + "}"));
  EXPECT_FALSE(accepts_whole("{\"a\":" + std::string(101, '1') + "}"));
  EXPECT_FALSE(accepts_whole("{\"a\":1e100}"));
  EXPECT_FALSE(accepts_whole("{\"a\":1e-100}"));
  EXPECT_FALSE(accepts_whole("{\"a\":1E+007}"));
  JsonRecognizer r;
  ASSERT_TRUE(r.feed("{\"a\":1e99"));
  EXPECT_TRUE(r.feed("}"));  // at the limit the number can still end
}

TEST(JsonRecognizer, RefusalIsFinal) {
  JsonRecognizer r;
  EXPECT_FALSE(r.feed('['));
  EXPECT_TRUE(r.failed());
  EXPECT_FALSE(r.feed('{'));
  EXPECT_FALSE(r.complete());
}

TEST(JsonRecognizer, MultiByteCharactersMayArriveInPieces) {
  // "é€😀" split at every byte boundary across feed() calls.
  const std::string doc = "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}";
  for (size_t cut = 0; cut <= doc.size(); ++cut) {
    JsonRecognizer r;
    EXPECT_TRUE(r.feed(std::string_view(doc).substr(0, cut)));
    EXPECT_TRUE(r.feed(std::string_view(doc).substr(cut)));
    EXPECT_TRUE(r.complete()) << cut;
  }
  JsonRecognizer r;
  ASSERT_TRUE(r.feed("{\"k\":\"\xe2"));
  EXPECT_FALSE(r.in_plain_string());  // a character is pending
  ASSERT_TRUE(r.feed("\x82\xac"));
  EXPECT_TRUE(r.in_plain_string());
}

TEST(JsonRecognizer, DepthLimit) {
  JsonLimits lim;
  lim.max_depth = 3;
  EXPECT_TRUE(accepts_whole(R"({"a":[{}]})", lim));
  EXPECT_FALSE(accepts_whole(R"({"a":[[[]]]})", lim));
  JsonRecognizer r(lim);
  ASSERT_TRUE(r.feed(R"({"a":[{"b":)"));
  EXPECT_EQ(r.depth(), 3);
  EXPECT_FALSE(r.feed('['));
  // The default (32) with 32 levels, and one more.
  EXPECT_TRUE(accepts_whole("{\"a\":" + std::string(31, '[') + std::string(31, ']') + "}"));
  EXPECT_FALSE(accepts_whole("{\"a\":" + std::string(32, '[') + std::string(32, ']') + "}"));
}

TEST(JsonRecognizer, WhitespaceRunLimit) {
  JsonLimits lim;
  lim.max_whitespace_run = 4;
  EXPECT_TRUE(accepts_whole("{    \"a\"    :    1    }    ", lim));
  EXPECT_FALSE(accepts_whole("{     \"a\":1}", lim));
  EXPECT_FALSE(accepts_whole("{\"a\":1}     ", lim));
  EXPECT_TRUE(accepts_whole("{\"a\":\"          \"}", lim));  // inside a string it is text
  EXPECT_TRUE(accepts_whole(std::string("{") + std::string(1000, ' ') + "}"));  // default: none
}

// A random walk through the automaton: from every accepted prefix at least one byte is
// accepted (no dead ends), until the document is complete; the finished documents parse.
TEST(JsonRecognizer, RandomWalksNeverReachADeadEndAndFinishAsJson) {
  std::mt19937 rng(7);
  // Bytes that close things, tried first once a walk is long enough.
  // A quote first (it closes a string and cannot continue a number or follow a value).
  const std::string closing = "\"}]:0dcaelrsu\\\x80";
  for (int walk = 0; walk < 400; ++walk) {
    JsonLimits lim;
    lim.max_depth = 1 + static_cast<int>(rng() % 6);
    lim.max_whitespace_run = static_cast<int>(rng() % 3);
    JsonRecognizer r(lim);
    std::string doc;
    for (int step = 0; !r.complete(); ++step) {
      ASSERT_LT(step, 2000) << doc;
      std::vector<unsigned char> ok;
      for (unsigned b = 0; b < 256; ++b) {
        JsonRecognizer t = r;
        if (t.feed(static_cast<unsigned char>(b))) ok.push_back(static_cast<unsigned char>(b));
      }
      ASSERT_FALSE(ok.empty()) << "dead end after: " << doc;
      unsigned char pick = ok[rng() % ok.size()];
      if (step > 40) {
        for (char c : closing) {
          if (std::find(ok.begin(), ok.end(), static_cast<unsigned char>(c)) != ok.end()) {
            pick = static_cast<unsigned char>(c);
            break;
          }
        }
      }
      ASSERT_TRUE(r.feed(pick));
      doc.push_back(static_cast<char>(pick));
    }
    const auto parsed = nlohmann::json::parse(doc, nullptr, false);
    EXPECT_TRUE(parsed.is_object()) << doc;
  }
}

// A vocabulary given as strings; token 0 is the end-of-generation token, 1 a control token.
class FakeTokenizer : public test_support::FakeTokenizer {
 public:
  explicit FakeTokenizer(std::vector<std::string> pieces)
      : test_support::FakeTokenizer(std::move(pieces), 2) {}
};

// The reference: every token walked byte by byte from the filter's current state.
std::vector<bool> brute_force_allowed(const Tokenizer& tok, const JsonRecognizer& state) {
  std::vector<bool> ok(static_cast<size_t>(tok.n_vocab()));
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    if (tok.is_eog(id)) {
      ok[static_cast<size_t>(id)] = state.complete();
      continue;
    }
    const std::string piece = tok.token_to_piece(id, false);
    JsonRecognizer r = state;
    ok[static_cast<size_t>(id)] = !state.complete() && !piece.empty() && r.feed(piece);
  }
  return ok;
}

void expect_mask_matches_brute_force(const Tokenizer& tok, JsonTokenFilter& f,
                                     const std::string& context) {
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()), 0.5f);
  const size_t allowed = f.mask(logits.data());
  const std::vector<bool> ref = brute_force_allowed(tok, f.recognizer());
  size_t n_ref = 0, mismatches = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    n_ref += ref[i];
    const bool kept = logits[i] > kNegInf;
    if (kept != ref[i] && ++mismatches <= 5)
      ADD_FAILURE() << "after '" << context << "': token " << i << " '"
                    << tok.token_to_piece(static_cast<int32_t>(i), false) << "' kept=" << kept
                    << " reference=" << ref[i];
  }
  EXPECT_EQ(allowed, n_ref) << context;
  EXPECT_EQ(mismatches, 0u) << context;
}

const std::vector<std::string> kPrefixes = {
    "",
    "{",
    "{ ",
    "{\"",
    "{\"a",
    "{\"a\"",
    "{\"a\":",
    "{\"a\":-",
    "{\"a\":0",
    "{\"a\":12",
    "{\"a\":1.",
    "{\"a\":1.5e",
    "{\"a\":1.5e-",
    "{\"a\":1e5",
    "{\"a\":t",
    "{\"a\":fal",
    "{\"a\":\"",
    "{\"a\":\"x\\",
    "{\"a\":\"\\u",
    "{\"a\":\"\\ud8",
    "{\"a\":\"\\ud83d",
    "{\"a\":\"\\ud83d\\",
    "{\"a\":\"\\ud83d\\u",
    "{\"a\":\"\\ud83d\\ude",
    "{\"a\":\"\xe2",
    "{\"a\":\"\xe2\x82",
    "{\"a\":\"\xf0",
    "{\"a\":[",
    "{\"a\":[1,",
    "{\"a\":[1]",
    "{\"a\":{",
    "{\"a\":{}",
    "{\"a\":1,",
    "{\"a\":1}",
    "{\"a\":1} ",
};

TEST(JsonTokenFilter, MaskIsExactOnASmallVocabulary) {
  std::vector<std::string> pieces = {
      "<eos>", "<ctl>", "{\"", "\"}", "\":", "\",", "\": \"", "\n  ", "name", " hello", "23",
      "true", "false", "null", "tr", "ue", "\\n", "\\u", "d83d", "de00", "00e9", "\xc3\xa9",
      "\xe2\x82\xac", "\xa9", "\xff", "}}", "]}", "1}", "\"a\"", "x\"y", "01", "1.5", "e+",
      // Plain text up to a quote that closes the string: never accepted without a walk
      // (found by fuzz_json_constraint: a key's tail was taken for plain string text).
      "k\":\"v", "a\",\"b\":\"", "x\\\"y"};
  // Every byte of the prefixes as a token of its own, so the filter can reach each prefix.
  std::string singles;
  for (const std::string& p : kPrefixes) singles += p;
  for (char c : singles + "}] \t") {
    if (std::find(pieces.begin(), pieces.end(), std::string(1, c)) == pieces.end())
      pieces.emplace_back(1, c);
  }
  FakeTokenizer tok(pieces);
  for (const std::string& prefix : kPrefixes) {
    JsonTokenFilter f(tok);
    for (char c : prefix) {
      const auto it = std::find(pieces.begin() + 2, pieces.end(), std::string(1, c));
      ASSERT_TRUE(f.accept(static_cast<int32_t>(it - pieces.begin()))) << prefix;
    }
    expect_mask_matches_brute_force(tok, f, prefix);
  }
}

TEST(JsonTokenFilter, EndOfGenerationOnlyOnceComplete) {
  FakeTokenizer tok({"<eos>", "<ctl>", "{", "}", " ", "\"a\":1"});
  JsonTokenFilter f(tok);
  std::vector<float> logits(6, 1.0f);
  EXPECT_EQ(f.mask(logits.data()), 2u);  // "{" and leading whitespace
  EXPECT_EQ(logits[0], kNegInf);
  EXPECT_EQ(logits[1], kNegInf);
  EXPECT_GT(logits[2], kNegInf);
  ASSERT_TRUE(f.accept(2));
  std::fill(logits.begin(), logits.end(), 1.0f);
  EXPECT_EQ(f.mask(logits.data()), 3u);  // "}", " ", "\"a\":1"
  EXPECT_FALSE(f.complete());
  ASSERT_TRUE(f.accept(3));
  EXPECT_TRUE(f.complete());
  std::fill(logits.begin(), logits.end(), 1.0f);
  EXPECT_EQ(f.mask(logits.data()), 1u);  // only end of generation, not even whitespace
  EXPECT_GT(logits[0], kNegInf);
  EXPECT_EQ(logits[4], kNegInf);
  EXPECT_TRUE(f.accept(0));
}

// One index serves many answers: each filter's document is its own.
TEST(JsonTokenFilter, FiltersSharingAnIndexAreIndependent) {
  FakeTokenizer tok({"<eos>", "<ctl>", "{", "}", " ", "\"a\":1"});
  const auto index = std::make_shared<const JsonVocabIndex>(tok);
  EXPECT_EQ(index->n_vocab(), 6);
  JsonTokenFilter a(index), b(index);
  ASSERT_TRUE(a.accept(2));
  ASSERT_TRUE(a.accept(3));
  EXPECT_TRUE(a.complete());
  EXPECT_FALSE(b.complete());
  std::vector<float> logits(6, 1.0f);
  EXPECT_EQ(b.mask(logits.data()), 2u);  // still at the start: "{" and whitespace
  EXPECT_GT(logits[2], kNegInf);
  expect_mask_matches_brute_force(tok, b, "");
  ASSERT_TRUE(b.accept(2));
  expect_mask_matches_brute_force(tok, b, "{");
  std::fill(logits.begin(), logits.end(), 1.0f);
  EXPECT_EQ(a.mask(logits.data()), 1u);  // a is complete: only end of generation
  EXPECT_GT(logits[0], kNegInf);
}

TEST(JsonTokenFilter, RefusedTokensFailTheDocument) {
  FakeTokenizer tok({"<eos>", "<ctl>", "{", "}", "x"});
  JsonTokenFilter a(tok);
  EXPECT_FALSE(a.accept(0));  // end of generation before the object
  EXPECT_TRUE(a.recognizer().failed());
  JsonTokenFilter b(tok);
  EXPECT_FALSE(b.accept(1));  // no bytes
  JsonTokenFilter c(tok);
  EXPECT_FALSE(c.accept(4));
  JsonTokenFilter d(tok);
  EXPECT_FALSE(d.accept(99));
  EXPECT_FALSE(d.accept(-1));
  std::vector<float> logits(5, 1.0f);
  EXPECT_EQ(d.mask(logits.data()), 0u);  // nothing continues a failed document
}

// ---- The real vocabulary and model ----

std::string models_dir() {
  if (const char* d = std::getenv("HEARTH_MODELS")) return d;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.local/share/hearth/models";
}

class JsonRealModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = models_dir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) return;
    auto m = Model::load(path);
    ASSERT_TRUE(m) << m.error();
    model_ = std::move(*m).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "SmolLM2-135M-Instruct.Q4_1.gguf not in " << models_dir();
  }
  static Model* model_;
};
Model* JsonRealModel::model_ = nullptr;

// The model's index is built once, by whichever thread asks first, and shared.
TEST_F(JsonRealModel, VocabIndexIsBuiltOnceAndShared) {
  std::vector<std::shared_ptr<const JsonVocabIndex>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) threads.emplace_back([&g] { g = model_->json_vocab_index(); });
  for (auto& t : threads) t.join();
  ASSERT_NE(got[0], nullptr);
  for (const auto& g : got) EXPECT_EQ(g.get(), got[0].get());
  EXPECT_EQ(model_->json_vocab_index().get(), got[0].get());
  EXPECT_EQ(got[0]->n_vocab(), model_->tokenizer().n_vocab());
}

TEST_F(JsonRealModel, MaskIsExactOnTheRealVocabulary) {
  const Tokenizer& tok = model_->tokenizer();
  for (const std::string& prefix : kPrefixes) {
    // Reach the prefix through the filter with the tokens the tokenizer makes of it, over
    // the model's shared index as the generator uses it.
    JsonTokenFilter f(model_->json_vocab_index());
    bool reached = true;
    for (int32_t id : tok.encode(prefix, false, false)) reached = reached && f.accept(id);
    ASSERT_TRUE(reached) << prefix;
    expect_mask_matches_brute_force(tok, f, prefix);
  }
}

// Random logits: every token the sampler draws from a masked row is accepted.
TEST_F(JsonRealModel, SamplingFromMaskedRandomLogitsStaysValid) {
  const Tokenizer& tok = model_->tokenizer();
  const auto n = static_cast<size_t>(tok.n_vocab());
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  std::vector<float> logits(n);
  for (int run = 0; run < 4; ++run) {
    JsonTokenFilter f(model_->json_vocab_index());
    SamplerParams sp;
    sp.temp = run == 0 ? 0.0f : 1.0f;
    sp.top_k = run == 3 ? 0 : 40;
    sp.seed = static_cast<uint64_t>(run);
    Sampler sampler(sp, static_cast<int32_t>(n));
    std::string text;
    for (int step = 0; step < 60 && !f.complete(); ++step) {
      for (float& l : logits) l = noise(rng);
      ASSERT_GT(f.mask(logits.data()), 0u) << text;
      const int32_t id = sampler.sample(logits.data());
      ASSERT_TRUE(f.accept(id)) << text << " + token " << id;
      text += tok.token_to_piece(id, false);
    }
    JsonRecognizer check;
    EXPECT_TRUE(check.feed(text)) << text;
  }
}

TEST_F(JsonRealModel, GenerationInJsonModeParses) {
  const Tokenizer& tok = model_->tokenizer();
  const char* const questions[] = {
      "Describe a cat as a JSON object with name, age and colour.",
      "Return a JSON object with the keys city and country for Paris.",
      "Give the name and age of a person as JSON.",
  };
  ContextParams cp;
  cp.n_ctx = 512;
  cp.n_threads = 2;
  auto ctx = Context::create(*model_, cp);
  ASSERT_TRUE(ctx) << ctx.error();
  int run = 0;
  for (const char* q : questions) {
    const std::vector<int32_t> prompt =
        tok.encode(std::string("<|im_start|>system\nYou reply with a JSON object only.<|im_end|>\n"
                               "<|im_start|>user\n") +
                       q + "<|im_end|>\n<|im_start|>assistant\n",
                   false, true);
    for (float temp : {0.0f, 0.8f}) {
      GenerateParams gp;
      gp.json_object = true;
      gp.sampling.temp = temp;
      gp.sampling.seed = static_cast<uint64_t>(++run);
      gp.max_tokens = 300;
      auto r = generate(**ctx, prompt, gp, nullptr);
      ASSERT_TRUE(r) << r.error();
      SCOPED_TRACE(
          std::string(q) + " temp " + std::to_string(temp) + ": " +
          nlohmann::json(r->text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      // A generation cut short (max_tokens) is still a valid prefix; these prompts finish.
      JsonRecognizer prefix;
      EXPECT_TRUE(prefix.feed(r->text));
      EXPECT_EQ(r->reason, StopReason::kEndOfGeneration);
      const auto parsed = nlohmann::json::parse(r->text, nullptr, false);
      EXPECT_TRUE(parsed.is_object());
    }
  }
}

}  // namespace
}  // namespace hearth::engine
