#include "app/server_request.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "platform/utf8.h"

namespace hearth::app {
namespace {

using nlohmann::json;

ApiError bad(std::string param, std::string message) {
  return ApiError{400, "invalid_request_error", std::move(message), std::move(param)};
}

// Field readers: return an error when the field is present with the wrong type or range.
// Absent (or null) fields leave `out` unchanged.
std::optional<ApiError> read_bool(const json& obj, const char* key, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return bad(key, fmt::format("'{}' must be a boolean", key));
  out = it->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> read_number(const json& obj, const char* key, double lo, double hi,
                                    float& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return bad(key, fmt::format("'{}' must be a number", key));
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return bad(key, fmt::format("'{}' is {}, out of range ({} to {})", key, v, lo, hi));
  out = static_cast<float>(v);
  return std::nullopt;
}

std::optional<ApiError> read_int(const json& obj, const char* key, int64_t lo, int64_t hi,
                                 int64_t& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_number_float()) {
    const double v = it->get<double>();
    if (!std::isfinite(v) || v != std::floor(v) || v < static_cast<double>(lo) ||
        v > static_cast<double>(hi))
      return bad(key, fmt::format("'{}' must be an integer from {} to {}", key, lo, hi));
    out = static_cast<int64_t>(v);
    return std::nullopt;
  }
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(hi) || static_cast<int64_t>(v) < lo)
      return bad(key, fmt::format("'{}' must be an integer from {} to {}", key, lo, hi));
    out = static_cast<int64_t>(v);
    return std::nullopt;
  }
  if (!it->is_number_integer()) return bad(key, fmt::format("'{}' must be an integer", key));
  const int64_t v = it->get<int64_t>();
  if (v < lo || v > hi)
    return bad(key, fmt::format("'{}' must be an integer from {} to {}", key, lo, hi));
  out = v;
  return std::nullopt;
}

std::optional<ApiError> read_stop(const json& obj, const char* key, std::vector<std::string>& out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    if (!it->get_ref<const std::string&>().empty()) out.push_back(it->get<std::string>());
    return std::nullopt;
  }
  if (!it->is_array())
    return bad(key, fmt::format("'{}' must be a string or a list of strings", key));
  if (it->size() > kMaxStops)
    return bad(key, fmt::format("'{}' has {} entries; at most {}", key, it->size(), kMaxStops));
  for (const json& s : *it) {
    if (!s.is_string())
      return bad(key, fmt::format("'{}' must be a string or a list of strings", key));
    if (!s.get_ref<const std::string&>().empty()) out.push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> read_seed(const json& obj, ParsedRequest& r) {
  auto it = obj.find("seed");
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) {
    r.gen.sampling.seed = it->get<uint64_t>();
  } else if (it->is_number_integer()) {
    r.gen.sampling.seed = static_cast<uint64_t>(it->get<int64_t>());
  } else {
    return bad("seed", "'seed' must be an integer");
  }
  r.seed_set = true;
  return std::nullopt;
}

// A message's content: a string, or (OpenAI) a list of {"type": "text", "text": ...} parts.
std::optional<ApiError> read_content(const json& msg, size_t i, std::string& out) {
  const std::string param = fmt::format("messages[{}].content", i);
  auto it = msg.find("content");
  if (it == msg.end() || it->is_null()) return std::nullopt;  // e.g. an assistant turn with no text
  if (it->is_string()) {
    out = it->get<std::string>();
    return std::nullopt;
  }
  if (!it->is_array())
    return bad(param, fmt::format("'{}' must be a string or a list of text parts", param));
  for (const json& part : *it) {
    if (!part.is_object()) return bad(param, fmt::format("'{}' parts must be objects", param));
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || *type != "text")
      return bad(param, fmt::format("'{}': only parts of type 'text' are supported", param));
    auto text = part.find("text");
    if (text == part.end() || !text->is_string())
      return bad(param, fmt::format("'{}': a text part needs a string 'text'", param));
    out += text->get<std::string>();
  }
  return std::nullopt;
}

std::optional<ApiError> read_messages(const json& body, ParsedRequest& r) {
  auto it = body.find("messages");
  if (it == body.end()) return bad("messages", "'messages' is required");
  if (!it->is_array()) return bad("messages", "'messages' must be a list of messages");
  if (it->empty()) return bad("messages", "'messages' must contain at least one message");
  if (it->size() > kMaxMessages)
    return bad("messages",
               fmt::format("'messages' has {} entries; at most {}", it->size(), kMaxMessages));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) return bad(param, fmt::format("'{}' must be an object", param));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return bad(param + ".role", fmt::format("'{}.role' is required and must be a string", param));
    std::string role_s = role->get<std::string>();
    if (role_s == "developer") role_s = "system";  // OpenAI's newer name for the system role
    if (role_s != "system" && role_s != "user" && role_s != "assistant")
      return bad(param + ".role",
                 fmt::format("'{}.role' is '{}'; use system, user or assistant", param, role_s));
    engine::ChatMessage msg;
    msg.role = std::move(role_s);
    if (auto e = read_content(m, i, msg.content)) return e;
    r.messages.push_back(std::move(msg));
  }
  return std::nullopt;
}

std::optional<ApiError> read_prompt(const json& body, ParsedRequest& r) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return bad("prompt", "'prompt' is required");
  if (it->is_string()) {
    r.prompt = it->get<std::string>();
    return std::nullopt;
  }
  // OpenAI allows a list of prompts; one answer per request is what we serve.
  if (r.kind == ApiKind::kOpenAiCompletion && it->is_array() && it->size() == 1 &&
      (*it)[0].is_string()) {
    r.prompt = (*it)[0].get<std::string>();
    return std::nullopt;
  }
  return bad("prompt", "'prompt' must be a string");
}

std::optional<ApiError> read_model(const json& body, std::string& model) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return bad("model", "'model' is required");
  if (!it->is_string()) return bad("model", "'model' must be a string");
  model = it->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> read_openai(const json& body, ParsedRequest& r) {
  engine::SamplerParams& s = r.gen.sampling;
  if (auto e = read_bool(body, "stream", r.stream)) return e;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return bad("stream_options", "'stream_options' must be an object");
    if (auto e = read_bool(*it, "include_usage", r.include_usage)) return e;
  }
  if (auto e = read_number(body, "temperature", 0, 2, s.temp)) return e;
  if (auto e = read_number(body, "top_p", 0, 1, s.top_p)) return e;
  if (body.contains("top_p") && !(s.top_p > 0))
    return bad("top_p", "'top_p' must be greater than 0");
  if (auto e = read_number(body, "presence_penalty", -2, 2, s.presence_penalty)) return e;
  if (auto e = read_number(body, "frequency_penalty", -2, 2, s.frequency_penalty)) return e;
  // llama.cpp-style extensions that OpenAI clients can pass through extra_body.
  int64_t top_k = s.top_k;
  if (auto e = read_int(body, "top_k", 0, 1 << 20, top_k)) return e;
  s.top_k = static_cast<int>(top_k);
  if (auto e = read_number(body, "min_p", 0, 1, s.min_p)) return e;
  if (auto e = read_int(body, "max_tokens", 1, INT32_MAX, r.gen.max_tokens)) return e;
  if (auto e = read_int(body, "max_completion_tokens", 1, INT32_MAX, r.gen.max_tokens)) return e;
  if (auto e = read_stop(body, "stop", r.gen.stop)) return e;
  if (auto e = read_seed(body, r)) return e;
  int64_t n = 1;
  if (auto e = read_int(body, "n", 1, 128, n)) return e;
  if (n != 1) return bad("n", "only n = 1 is supported");
  if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string())
      return bad("response_format", "'response_format' must be an object with a string 'type'");
    const std::string& type = (*it)["type"].get_ref<const std::string&>();
    if (type == "json_object")
      r.gen.json_object = true;
    else if (type != "text")
      return bad("response_format",
                 fmt::format("response_format type '{}' is not supported; use 'text' or "
                             "'json_object' (JSON schemas are not supported)",
                             type));
  }
  return std::nullopt;
}

std::optional<ApiError> read_ollama(const json& body, ParsedRequest& r) {
  r.stream = true;  // Ollama streams unless told not to
  if (auto e = read_bool(body, "stream", r.stream)) return e;
  if (auto it = body.find("format"); it != body.end() && !it->is_null()) {
    if (it->is_string() && *it == "json")
      r.gen.json_object = true;
    else if (!(it->is_string() && it->get_ref<const std::string&>().empty()))
      return bad("format", "'format' must be \"json\" (JSON schemas are not supported)");
  }
  auto it = body.find("options");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) return bad("options", "'options' must be an object");
  const json& o = *it;
  engine::SamplerParams& s = r.gen.sampling;
  if (auto e = read_number(o, "temperature", 0, 100, s.temp)) return e;
  if (auto e = read_number(o, "top_p", 0, 1, s.top_p)) return e;
  if (o.contains("top_p") && !(s.top_p > 0)) return bad("top_p", "'top_p' must be greater than 0");
  if (auto e = read_number(o, "min_p", 0, 1, s.min_p)) return e;
  if (auto e = read_number(o, "repeat_penalty", 0.01, 100, s.repeat_penalty)) return e;
  if (auto e = read_number(o, "presence_penalty", -100, 100, s.presence_penalty)) return e;
  if (auto e = read_number(o, "frequency_penalty", -100, 100, s.frequency_penalty)) return e;
  int64_t v = s.top_k;
  if (auto e = read_int(o, "top_k", 0, 1 << 20, v)) return e;
  s.top_k = static_cast<int>(v);
  v = s.repeat_last_n;
  if (auto e = read_int(o, "repeat_last_n", -1, 1 << 20, v)) return e;
  s.repeat_last_n = static_cast<int>(v);
  int64_t num_predict = r.gen.max_tokens;
  if (auto e = read_int(o, "num_predict", -2, INT32_MAX, num_predict)) return e;
  r.gen.max_tokens = num_predict < 0 ? -1 : num_predict;  // -1 / -2: until the context is full
  if (auto e = read_stop(o, "stop", r.gen.stop)) return e;
  if (auto e = read_seed(o, r)) return e;
  return std::nullopt;
}

}  // namespace

int json_nesting_depth(std::string_view body) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{')
      deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}')
      --depth;
  }
  return deepest;
}

namespace {

// The body as a JSON object, or the error that says why it is not one.
std::optional<ApiError> parse_body(std::string_view body, json& out) {
  if (!platform::utf8::is_valid(body)) return bad("", "the request body is not valid UTF-8");
  if (json_nesting_depth(body) > kMaxJsonDepth)
    return bad("", fmt::format("the request body nests deeper than {} levels", kMaxJsonDepth));
  out = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return bad("", "the request body is not valid JSON");
  if (!out.is_object()) return bad("", "the request body must be a JSON object");
  return std::nullopt;
}

// A list of token ids (OpenAI's pre-tokenized input). Range against the vocabulary is the
// handler's check; here ids must be integers from 0 to INT32_MAX.
std::optional<ApiError> read_token_ids(const json& list, const std::string& param,
                                       std::vector<int32_t>& out) {
  if (list.empty()) return bad(param, fmt::format("'{}' must not be empty", param));
  for (const json& t : list) {
    if (!t.is_number_integer() ||
        (t.is_number_unsigned() ? t.get<uint64_t>() > INT32_MAX
                                : t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX))
      return bad(param, fmt::format("'{}' must hold token ids (integers from 0)", param));
    out.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return std::nullopt;
}

// "input": a string, a list of strings, or (OpenAI) a list of token ids or of such lists.
std::optional<ApiError> read_embedding_input(const json& body, const char* key,
                                             EmbeddingRequest& r) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return bad(key, fmt::format("'{}' is required", key));
  const bool tokens_allowed = r.api == EmbedApi::kOpenAi;
  const char* types = tokens_allowed ? "a string, a list of strings, or a list of token-id lists"
                      : r.api == EmbedApi::kOllamaEmbed ? "a string or a list of strings"
                                                        : "a string";
  auto add_text = [&](const json& v, const std::string& param) -> std::optional<ApiError> {
    if (v.get_ref<const std::string&>().empty())
      return bad(param, fmt::format("'{}' must not be an empty string", param));
    r.inputs.push_back({v.get<std::string>(), {}, false});
    return std::nullopt;
  };
  if (it->is_string()) return add_text(*it, key);
  if (!it->is_array() || r.api == EmbedApi::kOllamaLegacy)
    return bad(key, fmt::format("'{}' must be {}", key, types));
  if (it->empty()) return bad(key, fmt::format("'{}' must not be empty", key));
  if (it->size() > kMaxEmbeddingInputs)
    return bad(
        key, fmt::format("'{}' has {} entries; at most {}", key, it->size(), kMaxEmbeddingInputs));
  if (tokens_allowed && (*it)[0].is_number()) {  // one pre-tokenized input
    EmbeddingInput in;
    in.from_tokens = true;
    if (auto e = read_token_ids(*it, key, in.tokens)) return e;
    r.inputs.push_back(std::move(in));
    return std::nullopt;
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& v = (*it)[i];
    const std::string param = fmt::format("{}[{}]", key, i);
    if (v.is_string()) {
      if (auto e = add_text(v, param)) return e;
    } else if (tokens_allowed && v.is_array()) {
      EmbeddingInput in;
      in.from_tokens = true;
      if (auto e = read_token_ids(v, param, in.tokens)) return e;
      r.inputs.push_back(std::move(in));
    } else {
      return bad(param, fmt::format("'{}' must be a string{}", param,
                                    tokens_allowed ? " or a list of token ids" : ""));
    }
  }
  return std::nullopt;
}

}  // namespace

EmbeddingParseResult parse_embedding_request(EmbedApi api, std::string_view body) {
  EmbeddingParseResult out;
  json body_json;
  if (auto e = parse_body(body, body_json)) {
    out.error = std::move(*e);
    return out;
  }
  EmbeddingRequest r;
  r.api = api;
  r.truncate = api != EmbedApi::kOpenAi;  // Ollama truncates by default; OpenAI refuses
  std::optional<ApiError> e = read_model(body_json, r.model);
  if (!e)
    e = read_embedding_input(body_json, api == EmbedApi::kOllamaLegacy ? "prompt" : "input", r);
  if (!e) e = read_int(body_json, "dimensions", 1, 1 << 20, r.dimensions);
  if (!e && api == EmbedApi::kOllamaEmbed) e = read_bool(body_json, "truncate", r.truncate);
  if (!e && api == EmbedApi::kOpenAi) {
    if (auto it = body_json.find("encoding_format"); it != body_json.end() && !it->is_null()) {
      if (it->is_string() && *it == "base64")
        r.base64 = true;
      else if (!(it->is_string() && *it == "float"))
        e = bad("encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    }
  }
  if (e) {
    out.error = std::move(*e);
    return out;
  }
  out.request = std::move(r);
  return out;
}

ParseResult parse_request(ApiKind kind, std::string_view body) {
  ParseResult out;
  json body_json;
  if (auto e = parse_body(body, body_json)) {
    out.error = std::move(*e);
    return out;
  }
  ParsedRequest r;
  r.kind = kind;
  r.gen.sampling.repeat_penalty = 1.0f;
  std::optional<ApiError> e = read_model(body_json, r.model);
  const bool chat = kind == ApiKind::kOpenAiChat || kind == ApiKind::kOllamaChat;
  if (!e) e = chat ? read_messages(body_json, r) : read_prompt(body_json, r);
  const bool openai = kind == ApiKind::kOpenAiChat || kind == ApiKind::kOpenAiCompletion;
  if (!e) e = openai ? read_openai(body_json, r) : read_ollama(body_json, r);
  if (!e && kind == ApiKind::kOllamaGenerate) {
    if (auto it = body_json.find("system"); it != body_json.end() && !it->is_null()) {
      if (!it->is_string())
        e = bad("system", "'system' must be a string");
      else
        r.system = it->get<std::string>();
    }
    if (!e) e = read_bool(body_json, "raw", r.raw);
  }
  if (e) {
    out.error = std::move(*e);
    return out;
  }
  out.request = std::move(r);
  return out;
}

}  // namespace hearth::app
