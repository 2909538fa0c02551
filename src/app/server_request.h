// Request bodies of the server's generation endpoints, parsed and validated.
//
// parse_request() is a pure function of the body bytes (no model, no I/O), so that the
// fuzzer can drive it: any input gives either a ParsedRequest or an ApiError with the
// HTTP status and a message naming the offending field. Invalid UTF-8, nesting deeper
// than kMaxJsonDepth, wrong types, non-finite or out-of-range numbers are errors.
// Unknown fields are ignored (clients send many we do not use).
// Thread safety: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/chat_template.h"
#include "engine/generator.h"

namespace hearth::app {

enum class ApiKind {
  kOpenAiChat,        // POST /v1/chat/completions
  kOpenAiCompletion,  // POST /v1/completions
  kOllamaChat,        // POST /api/chat
  kOllamaGenerate,    // POST /api/generate
};

inline constexpr int kMaxJsonDepth = 32;
inline constexpr size_t kMaxMessages = 1024;
inline constexpr size_t kMaxStops = 16;

struct ApiError {
  int status = 400;                            // HTTP status
  std::string type = "invalid_request_error";  // OpenAI error type
  std::string message;
  std::string param;  // the field at fault, or empty
};

struct ParsedRequest {
  ApiKind kind = ApiKind::kOpenAiChat;
  std::string model;
  std::vector<engine::ChatMessage> messages;  // chat kinds
  std::string prompt;                         // completion kinds
  std::string system;                         // Ollama generate's "system"
  bool raw = false;                           // Ollama generate: no template
  bool stream = false;
  bool include_usage = false;  // OpenAI stream_options.include_usage
  bool seed_set = false;
  engine::GenerateParams gen;  // max_tokens < 0: until the context is full
};

struct ParseResult {
  std::optional<ParsedRequest> request;
  ApiError error;  // meaningful when !request
};

// POST /v1/embeddings (OpenAI), POST /api/embed and its older form /api/embeddings (Ollama).
enum class EmbedApi { kOpenAi, kOllamaEmbed, kOllamaLegacy };

inline constexpr size_t kMaxEmbeddingInputs = 2048;

// One text to embed, or (OpenAI) its token ids given directly.
struct EmbeddingInput {
  std::string text;
  std::vector<int32_t> tokens;  // when from_tokens; ids >= 0, the vocabulary is not checked
  bool from_tokens = false;
};

struct EmbeddingRequest {
  EmbedApi api = EmbedApi::kOpenAi;
  std::string model;
  std::vector<EmbeddingInput> inputs;  // 1 to kMaxEmbeddingInputs, none empty
  bool base64 = false;                 // OpenAI encoding_format "base64"
  int64_t dimensions = 0;              // "dimensions" when given (must be the model's)
  bool truncate = false;               // Ollama's "truncate" (default true); OpenAI: false
};

struct EmbeddingParseResult {
  std::optional<EmbeddingRequest> request;
  ApiError error;  // meaningful when !request
};

// Parses an embedding request: "input" (Ollama's legacy endpoint: "prompt") is a
// non-empty string, a list of them, or for OpenAI a list of token ids or of such lists.
// Pure, like parse_request().
EmbeddingParseResult parse_embedding_request(EmbedApi api, std::string_view body);

// Parses a request body for the given endpoint. Sampling fields not given keep the
// engine's defaults (engine::SamplerParams), except repeat penalties (off).
ParseResult parse_request(ApiKind kind, std::string_view body);

// Depth of the deepest [ / { nesting in a JSON text, counted outside strings.
int json_nesting_depth(std::string_view body);

}  // namespace hearth::app
