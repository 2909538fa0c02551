// Internal to the server: the state its handlers share and the helpers both API flavours
// (OpenAI, Ollama) use to turn a parsed request into a running job.
// Thread safety: ServerState is shared by all HTTP threads; its members are immutable after
// start-up except scheduler and metrics, which are thread-safe.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <variant>

#include "app/server.h"
#include "app/server_metrics.h"
#include "app/server_request.h"
#include "app/server_scheduler.h"
#include "engine/chat_template.h"

namespace hearth::app {

struct ServerState;

// Embedding vectors of one request, in input order.
struct Embeddings {
  std::vector<std::vector<float>> vectors;  // each [n_embd], unit L2 norm
  int64_t n_tokens = 0;                     // tokens over all inputs
  double seconds = 0;
};

// Embeddings run in an engine::Context of their own, apart from the slots, so that they
// never touch a chat's cache. It is made on the first request (a server that never embeds
// pays no memory for it) and serves one request at a time (mutex_ guards ctx_).
class Embedder {
 public:
  // 404 unknown model, 400 bad dimensions / token ids / too long (unless truncate), 504
  // when the wait for the context or the work passes the request timeout, 499 when the
  // client closed its connection (looked at while waiting, and before each input's each
  // n_batch chunk: the work stops at once and the context is free for the next request).
  std::variant<Embeddings, ApiError> embed(ServerState& state, const EmbeddingRequest& request);

 private:
  std::timed_mutex mutex_;
  std::unique_ptr<engine::Context> ctx_;
};

// OpenAI's encoding_format "base64": the float32 values' little-endian bytes, in base64.
std::string embedding_base64(const std::vector<float>& v);

struct ServerState {
  const engine::Model& model;
  ServerOptions options;
  engine::ChatTemplate chat_template;
  std::string chat_template_source;
  std::unique_ptr<Scheduler> scheduler;
  Metrics metrics;
  int64_t started_unix = 0;
  Embedder embedder{};
};

// True when a request's "model" names the served model (its id, with or without .gguf or
// Ollama's ":latest", case-insensitive).
bool model_matches(const ServerState& state, const std::string& name);

// Prompt tokens for a request: the chat template for messages (and Ollama generate unless
// raw), the plain text otherwise. Errors are 400s naming the problem.
std::variant<std::vector<int32_t>, ApiError> build_prompt(const ServerState& state,
                                                          const ParsedRequest& request);

// Checks the model, builds the prompt, queues the job. 404 unknown model, 400 prompt
// too long or empty, 503 queue full.
std::variant<std::shared_ptr<Job>, ApiError> start_job(ServerState& state,
                                                       const ParsedRequest& request);

// Streams a job's text through an HTTP chunked response: format_piece(text) for each
// piece, then format_end(result). A failed write (client gone) cancels the job at once.
// Returns false when the client went away.
bool pump_job(
    ServerState& state, Job& job, httplib::DataSink& sink,
    const std::function<std::string(std::string_view)>& format_piece,
    const std::function<std::string(const Expected<engine::GenerateResult>&)>& format_end);

// Records a finished generation in the metrics.
void record_generation(ServerState& state, const Expected<engine::GenerateResult>& result);

// A short random id for responses ("chatcmpl-<hex>").
std::string response_id(const char* prefix);

// Status and message for a job that ended in an error (504 timeout, 500 otherwise).
ApiError job_error(const Job& job, const std::string& message);

// Stores a finished chat (OpenAI or Ollama chat kinds) in the vault unless the server keeps
// no history or the generation was cancelled; a failure is a warning on stderr.
void store_history(ServerState& state, const ParsedRequest& request,
                   const engine::GenerateResult& result);

// "stop" or "length" (OpenAI's finish_reason; Ollama's done_reason).
const char* finish_reason(engine::StopReason reason);

// OpenAI's error JSON ({"error": {"message", "type", "param", "code"}}) as text.
std::string openai_error_body(int status, const std::string& type, const std::string& message);

void register_openai_routes(httplib::Server& http, ServerState& state);
void register_ollama_routes(httplib::Server& http, ServerState& state);
// GET / (the chat page), /chat.css, /chat.js.
void register_page_routes(httplib::Server& http);

}  // namespace hearth::app
