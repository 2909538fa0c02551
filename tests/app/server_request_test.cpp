// Request parsing and the per-request checks of hearth serve (no model, no sockets).
#include "app/server_request.h"

#include <gtest/gtest.h>

#include <string>

#include "app/server_auth.h"

namespace hearth::app {
namespace {

ParseResult chat(const std::string& body) { return parse_request(ApiKind::kOpenAiChat, body); }

std::string error_of(const ParseResult& r) {
  return r.request ? std::string("(parsed)") : r.error.message;
}

TEST(ServerRequest, ParsesAFullOpenAiChatRequest) {
  const ParseResult r = chat(R"({"model":"m","messages":[{"role":"developer","content":"Be brief."},
      {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
      {"role":"assistant","content":null}],
      "stream":true,"stream_options":{"include_usage":true},"temperature":0.25,"top_p":0.5,
      "max_tokens":7,"stop":"END","seed":-1,"presence_penalty":1.5,"frequency_penalty":-2,"unknown":[1]})");
  ASSERT_TRUE(r.request) << r.error.message;
  const ParsedRequest& p = *r.request;
  EXPECT_EQ(p.model, "m");
  ASSERT_EQ(p.messages.size(), 3u);
  EXPECT_EQ(p.messages[0].role, "system");
  EXPECT_EQ(p.messages[1].content, "ab");
  EXPECT_EQ(p.messages[2].content, "");
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
  EXPECT_FLOAT_EQ(p.gen.sampling.temp, 0.25f);
  EXPECT_FLOAT_EQ(p.gen.sampling.top_p, 0.5f);
  EXPECT_EQ(p.gen.max_tokens, 7);
  EXPECT_EQ(p.gen.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(p.seed_set);
  EXPECT_EQ(p.gen.sampling.seed, UINT64_MAX);
  EXPECT_FLOAT_EQ(p.gen.sampling.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(p.gen.sampling.frequency_penalty, -2.0f);
  EXPECT_FLOAT_EQ(p.gen.sampling.repeat_penalty, 1.0f);
}

TEST(ServerRequest, DefaultsWhenFieldsAreAbsent) {
  const ParseResult r = chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(r.request);
  EXPECT_FALSE(r.request->stream);
  EXPECT_FALSE(r.request->seed_set);
  EXPECT_EQ(r.request->gen.max_tokens, -1);
  EXPECT_TRUE(r.request->gen.stop.empty());
}

TEST(ServerRequest, RejectsWrongTypesAndRangesNamingTheField) {
  const std::string pre = R"({"model":"m","messages":[{"role":"user","content":"hi"}],)";
  struct Case {
    std::string field, needle;
  } cases[] = {
      {R"("temperature":"hot")", "'temperature' must be a number"},
      {R"("temperature":3)", "'temperature' is 3, out of range"},
      {R"("top_p":0)", "'top_p' must be greater than 0"},
      {R"("max_tokens":0)", "'max_tokens' must be an integer from 1"},
      {R"("max_tokens":1.5)", "'max_tokens' must be an integer"},
      {R"("max_tokens":1e300)", "max_tokens"},
      {R"("max_tokens":1e400)", "not valid JSON"},
      {R"("max_tokens":18446744073709551615)", "max_tokens"},
      {R"("stop":[1])", "'stop' must be a string or a list of strings"},
      {R"("stop":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"])",
       "at most 16"},
      {R"("seed":"x")", "'seed' must be an integer"},
      {R"("n":2)", "only n = 1"},
      {R"("stream":1)", "'stream' must be a boolean"},
      {R"("response_format":{"type":"json_schema","json_schema":{}})",
       "response_format type 'json_schema' is not supported"},
      {R"("response_format":"json_object")", "'response_format' must be an object"},
      {R"("response_format":{"type":1})", "'response_format' must be an object"},
      {R"("presence_penalty":-2.5)", "presence_penalty"},
  };
  for (const Case& c : cases) {
    const ParseResult r = chat(pre + c.field + "}");
    ASSERT_FALSE(r.request) << c.field;
    EXPECT_EQ(r.error.status, 400);
    EXPECT_NE(r.error.message.find(c.needle), std::string::npos)
        << c.field << ": " << r.error.message;
  }
}

TEST(ServerRequest, RejectsBadMessages) {
  EXPECT_NE(error_of(chat(R"({"model":"m"})")).find("'messages' is required"), std::string::npos);
  EXPECT_NE(error_of(chat(R"({"model":"m","messages":[]})")).find("at least one"),
            std::string::npos);
  EXPECT_NE(error_of(chat(R"({"model":"m","messages":[1]})")).find("messages[0]"),
            std::string::npos);
  EXPECT_NE(
      error_of(chat(R"({"model":"m","messages":[{"content":"x"}]})")).find("messages[0].role"),
      std::string::npos);
  EXPECT_NE(
      error_of(chat(R"({"model":"m","messages":[{"role":"tool","content":"x"}]})")).find("'tool'"),
      std::string::npos);
  EXPECT_NE(
      error_of(
          chat(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})"))
          .find("only parts of type 'text'"),
      std::string::npos);
  EXPECT_NE(
      error_of(chat(R"({"messages":[{"role":"user","content":"x"}]})")).find("'model' is required"),
      std::string::npos);
  EXPECT_NE(error_of(chat(R"({"model":5,"messages":[{"role":"user","content":"x"}]})"))
                .find("'model' must be"),
            std::string::npos);
}

TEST(ServerRequest, RejectsBadBodies) {
  EXPECT_NE(error_of(chat("")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(chat("{")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(chat("[1]")).find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(chat("{\"model\":\"\xff\"}")).find("UTF-8"), std::string::npos);
  EXPECT_NE(error_of(chat(R"({"model":"\ud800"})")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(
      error_of(chat(std::string(100000, '[') + std::string(100000, ']'))).find("nests deeper"),
      std::string::npos);
  // Every prefix of a valid body is an error, never a crash.
  const std::string valid =
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["x"]})";
  for (size_t n = 0; n < valid.size(); ++n) EXPECT_FALSE(chat(valid.substr(0, n)).request) << n;
  EXPECT_TRUE(chat(valid).request);
}

TEST(ServerRequest, Completions) {
  auto r = parse_request(ApiKind::kOpenAiCompletion,
                         R"({"model":"m","prompt":["one"],"stop":["a","b"]})");
  ASSERT_TRUE(r.request);
  EXPECT_EQ(r.request->prompt, "one");
  EXPECT_EQ(r.request->gen.stop.size(), 2u);
  r = parse_request(ApiKind::kOpenAiCompletion, R"({"model":"m","prompt":["one","two"]})");
  EXPECT_FALSE(r.request);
  r = parse_request(ApiKind::kOpenAiCompletion, R"({"model":"m"})");
  EXPECT_NE(error_of(r).find("'prompt' is required"), std::string::npos);
}

TEST(ServerRequest, OllamaStreamsByDefaultAndReadsOptions) {
  auto r = parse_request(ApiKind::kOllamaChat,
                         R"({"model":"m","messages":[{"role":"user","content":"hi"}],
      "options":{"temperature":0,"num_predict":5,"top_k":3,"repeat_penalty":1.2,"seed":9,"stop":["x"]}})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_TRUE(r.request->stream);
  EXPECT_EQ(r.request->gen.max_tokens, 5);
  EXPECT_EQ(r.request->gen.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(r.request->gen.sampling.repeat_penalty, 1.2f);
  EXPECT_EQ(r.request->gen.sampling.seed, 9u);
  r = parse_request(ApiKind::kOllamaGenerate,
                    R"({"model":"m","prompt":"p","system":"s","raw":true,"stream":false,
      "options":{"num_predict":-2}})");
  ASSERT_TRUE(r.request);
  EXPECT_FALSE(r.request->stream);
  EXPECT_TRUE(r.request->raw);
  EXPECT_EQ(r.request->system, "s");
  EXPECT_EQ(r.request->gen.max_tokens, -1);
  r = parse_request(ApiKind::kOllamaGenerate, R"({"model":"m","prompt":"p","format":{"type":"object"}})");
  EXPECT_NE(error_of(r).find("JSON schemas are not supported"), std::string::npos);
  r = parse_request(ApiKind::kOllamaGenerate, R"({"model":"m","prompt":"p","format":"yaml"})");
  EXPECT_NE(error_of(r).find("'format' must be \"json\""), std::string::npos);
  r = parse_request(ApiKind::kOllamaGenerate, R"({"model":"m","prompt":"p","options":[]})");
  EXPECT_NE(error_of(r).find("'options' must be an object"), std::string::npos);
}

TEST(ServerRequest, JsonMode) {
  auto r = chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],
      "response_format":{"type":"json_object"}})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_TRUE(r.request->gen.json_object);
  r = chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],
      "response_format":{"type":"text"}})");
  ASSERT_TRUE(r.request);
  EXPECT_FALSE(r.request->gen.json_object);
  r = parse_request(ApiKind::kOllamaChat,
                    R"({"model":"m","messages":[{"role":"user","content":"hi"}],"format":"json"})");
  ASSERT_TRUE(r.request);
  EXPECT_TRUE(r.request->gen.json_object);
  r = parse_request(ApiKind::kOllamaGenerate, R"({"model":"m","prompt":"p","format":"json"})");
  ASSERT_TRUE(r.request);
  EXPECT_TRUE(r.request->gen.json_object);
  r = parse_request(ApiKind::kOllamaGenerate, R"({"model":"m","prompt":"p","format":""})");
  ASSERT_TRUE(r.request);
  EXPECT_FALSE(r.request->gen.json_object);
}

EmbeddingParseResult embed(EmbedApi api, const std::string& body) {
  return parse_embedding_request(api, body);
}

std::string embed_error(EmbedApi api, const std::string& body) {
  const EmbeddingParseResult r = embed(api, body);
  if (r.request) return "(parsed)";
  EXPECT_EQ(r.error.status, 400) << body;
  return r.error.message;
}

TEST(ServerRequest, OpenAiEmbeddingInputs) {
  auto r = embed(EmbedApi::kOpenAi, R"({"model":"m","input":"one"})");
  ASSERT_TRUE(r.request) << r.error.message;
  ASSERT_EQ(r.request->inputs.size(), 1u);
  EXPECT_EQ(r.request->inputs[0].text, "one");
  EXPECT_FALSE(r.request->inputs[0].from_tokens);
  EXPECT_FALSE(r.request->base64);
  EXPECT_FALSE(r.request->truncate);
  EXPECT_EQ(r.request->dimensions, 0);

  r = embed(EmbedApi::kOpenAi,
            R"({"model":"m","input":["a","b","c"],"encoding_format":"base64","dimensions":576,"user":"x"})");
  ASSERT_TRUE(r.request) << r.error.message;
  ASSERT_EQ(r.request->inputs.size(), 3u);
  EXPECT_EQ(r.request->inputs[2].text, "c");
  EXPECT_TRUE(r.request->base64);
  EXPECT_EQ(r.request->dimensions, 576);

  r = embed(EmbedApi::kOpenAi, R"({"model":"m","input":[1,2,3],"encoding_format":"float"})");
  ASSERT_TRUE(r.request) << r.error.message;
  ASSERT_EQ(r.request->inputs.size(), 1u);
  EXPECT_TRUE(r.request->inputs[0].from_tokens);
  EXPECT_EQ(r.request->inputs[0].tokens, (std::vector<int32_t>{1, 2, 3}));

  r = embed(EmbedApi::kOpenAi, R"({"model":"m","input":[[1,2],[3],"text"]})");
  ASSERT_TRUE(r.request) << r.error.message;
  ASSERT_EQ(r.request->inputs.size(), 3u);
  EXPECT_EQ(r.request->inputs[1].tokens, std::vector<int32_t>{3});
  EXPECT_EQ(r.request->inputs[2].text, "text");
}

TEST(ServerRequest, EmbeddingErrorsNameTheField) {
  struct Case {
    EmbedApi api;
    std::string body, needle;
  } cases[] = {
      {EmbedApi::kOpenAi, R"({"input":"x"})", "'model' is required"},
      {EmbedApi::kOpenAi, R"({"model":1,"input":"x"})", "'model' must be a string"},
      {EmbedApi::kOpenAi, R"({"model":"m"})", "'input' is required"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":null})", "'input' is required"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":""})", "'input' must not be an empty string"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[]})", "'input' must not be empty"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":["a",""]})", "'input[1]' must not be an empty"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":5})", "'input' must be a string"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":{"a":1}})", "'input' must be a string"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":["a",5]})", "'input[1]'"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[1,"a"]})", "token ids"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[-1]})", "token ids"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[1.5]})", "token ids"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[4294967296]})", "token ids"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[[]]})", "'input[0]' must not be empty"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":[[1,[2]]]})", "token ids"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":"x","encoding_format":"int8"})",
       "'encoding_format' must be"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":"x","dimensions":0})", "'dimensions'"},
      {EmbedApi::kOpenAi, R"({"model":"m","input":"x","dimensions":"5"})", "'dimensions'"},
      {EmbedApi::kOllamaEmbed, R"({"model":"m","input":[[1,2]]})", "'input[0]' must be a string"},
      {EmbedApi::kOllamaEmbed, R"({"model":"m","input":[1]})", "'input[0]' must be a string"},
      {EmbedApi::kOllamaEmbed, R"({"model":"m","input":"x","truncate":"no"})",
       "'truncate' must be a boolean"},
      {EmbedApi::kOllamaLegacy, R"({"model":"m","prompt":["a"]})", "'prompt' must be a string"},
      {EmbedApi::kOllamaLegacy, R"({"model":"m","input":"a"})", "'prompt' is required"},
      {EmbedApi::kOpenAi, "[1]", "JSON object"},
      {EmbedApi::kOpenAi, "{\"model\":\"m\",\"input\":\"\xc3\"}", "UTF-8"},
  };
  for (const Case& c : cases)
    EXPECT_NE(embed_error(c.api, c.body).find(c.needle), std::string::npos)
        << c.body << " -> " << embed_error(c.api, c.body);
  // More than kMaxEmbeddingInputs inputs.
  std::string list = "[";
  for (size_t i = 0; i <= kMaxEmbeddingInputs; ++i) list += i ? ",\"a\"" : "\"a\"";
  list += "]";
  EXPECT_NE(embed_error(EmbedApi::kOpenAi, R"({"model":"m","input":)" + list + "}").find("at most"),
            std::string::npos);
  // Every prefix of a valid body is an error, never a crash.
  const std::string valid = R"({"model":"m","input":[[1,2],"abc"],"encoding_format":"base64"})";
  for (size_t n = 0; n < valid.size(); ++n)
    EXPECT_FALSE(embed(EmbedApi::kOpenAi, valid.substr(0, n)).request) << n;
  EXPECT_TRUE(embed(EmbedApi::kOpenAi, valid).request);
}

TEST(ServerRequest, OllamaEmbeddingInputs) {
  auto r = embed(EmbedApi::kOllamaEmbed, R"({"model":"m","input":["a","b"]})");
  ASSERT_TRUE(r.request) << r.error.message;
  EXPECT_EQ(r.request->inputs.size(), 2u);
  EXPECT_TRUE(r.request->truncate);
  r = embed(EmbedApi::kOllamaEmbed, R"({"model":"m","input":"a","truncate":false})");
  ASSERT_TRUE(r.request);
  EXPECT_FALSE(r.request->truncate);
  r = embed(EmbedApi::kOllamaLegacy, R"({"model":"m","prompt":"hello","options":{}})");
  ASSERT_TRUE(r.request) << r.error.message;
  ASSERT_EQ(r.request->inputs.size(), 1u);
  EXPECT_EQ(r.request->inputs[0].text, "hello");
}

TEST(ServerAuth, BearerMatchesOnlyTheExactKey) {
  const std::string key(64, 'a');
  EXPECT_TRUE(bearer_matches("Bearer " + key, key));
  EXPECT_TRUE(bearer_matches("bearer  " + key + " ", key));
  EXPECT_FALSE(bearer_matches(key, key));
  EXPECT_FALSE(bearer_matches("Bearer " + key.substr(1), key));
  EXPECT_FALSE(bearer_matches("Bearer " + key + "a", key));
  EXPECT_FALSE(bearer_matches("Basic " + key, key));
  EXPECT_FALSE(bearer_matches("Bearer ", ""));
}

TEST(ServerAuth, HostCheckRefusesDnsNames) {
  EXPECT_TRUE(host_allowed("localhost", "127.0.0.1"));
  EXPECT_TRUE(host_allowed("LOCALHOST:11435", "127.0.0.1"));
  EXPECT_TRUE(host_allowed("127.0.0.1:11435", "127.0.0.1"));
  EXPECT_TRUE(host_allowed("[::1]:80", "127.0.0.1"));
  EXPECT_TRUE(host_allowed("192.168.1.5:11435", "192.168.1.5"));
  EXPECT_TRUE(host_allowed("box.lan:11435", "box.lan"));
  EXPECT_FALSE(host_allowed("evil.example", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("evil.example:11435", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("localhost.evil.example", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("127.0.0.1.evil.example", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("localhost:", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("localhost:abc", "127.0.0.1"));
  EXPECT_FALSE(host_allowed("1.2.3", "127.0.0.1"));
}

TEST(ServerAuth, LoopbackAddresses) {
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("127.1.2.3"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_TRUE(is_loopback_address("localhost"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(is_loopback_address("::"));
  EXPECT_FALSE(is_loopback_address("127.0.0.1.evil"));
  EXPECT_FALSE(is_loopback_address("192.168.0.1"));
}

TEST(ServerAuth, GeneratedKeysAreHexAndDiffer) {
  auto a = generate_api_key(), b = generate_api_key();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 64u);
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(*a, *b);
}

}  // namespace
}  // namespace hearth::app
