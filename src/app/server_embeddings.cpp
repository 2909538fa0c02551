// Embeddings for POST /v1/embeddings, /api/embed and /api/embeddings (server_routes.h).
#include <fmt/format.h>
#include <sodium.h>

#include <algorithm>
#include <bit>
#include <chrono>

#include "app/server_connection.h"
#include "app/server_routes.h"
#include "platform/clock.h"

namespace hearth::app {
namespace {

constexpr std::chrono::milliseconds kWaitSlice{100};  // between looks at the client while waiting

ApiError bad(int status, std::string message, std::string param = "") {
  return ApiError{status, status == 400 ? "invalid_request_error" : "server_error",
                  std::move(message), std::move(param)};
}

// nginx's "client closed request": never seen by the client, only in /metrics.
ApiError client_gone() {
  return ApiError{499, "cancelled", "the client closed the connection; the embeddings stopped", ""};
}

ApiError too_late() {
  return ApiError{504, "timeout", "the request took longer than this server's limit", ""};
}

std::string input_param(const EmbeddingRequest& r, size_t i) {
  const char* key = r.api == EmbedApi::kOllamaLegacy ? "prompt" : "input";
  return r.inputs.size() == 1 ? std::string(key) : fmt::format("{}[{}]", key, i);
}

}  // namespace

std::variant<Embeddings, ApiError> Embedder::embed(ServerState& state, const EmbeddingRequest& r) {
  using Clock = platform::SteadyClock;
  const auto t0 = Clock::now();
  const auto deadline = platform::deadline_after(state.options.timeout_seconds);
  if (!model_matches(state, r.model))
    return ApiError{404, "invalid_request_error",
                    fmt::format("the model '{}' does not exist; this server serves '{}'", r.model,
                                state.options.model_id),
                    "model"};
  const engine::Tokenizer& tok = state.model.tokenizer();
  const int64_t n_embd = state.model.hparams().n_embd;
  const int64_t n_ctx = state.scheduler->n_ctx();
  if (r.dimensions != 0 && r.dimensions != n_embd)
    return bad(400,
               fmt::format("'dimensions' is {}; this model's embeddings have {} (they cannot be "
                           "shortened)",
                           r.dimensions, n_embd),
               "dimensions");

  // Tokens of every input first, so that a bad input fails before any work.
  std::vector<std::vector<int32_t>> tokens(r.inputs.size());
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const EmbeddingInput& in = r.inputs[i];
    std::vector<int32_t>& ids = tokens[i];
    if (in.from_tokens) {
      for (int32_t id : in.tokens)
        if (id >= tok.n_vocab())
          return bad(400,
                     fmt::format("'{}' holds the token id {}; this model's vocabulary has {}",
                                 input_param(r, i), id, tok.n_vocab()),
                     input_param(r, i));
      ids = in.tokens;
    } else {
      ids = tok.encode(in.text, true, false);
    }
    if (static_cast<int64_t>(ids.size()) > n_ctx) {
      if (!r.truncate)
        return bad(400,
                   fmt::format("'{}' is {} tokens; this server's context holds {}; shorten it",
                               input_param(r, i), ids.size(), n_ctx),
                   input_param(r, i));
      ids.resize(static_cast<size_t>(n_ctx));
    }
    if (ids.empty())
      return bad(400, fmt::format("'{}' gives no tokens", input_param(r, i)), input_param(r, i));
  }

  // A client that goes away stops the work at once: while waiting for the context, between
  // inputs and between n_batch chunks of an input (a poll of its socket each time).
  const auto gone = [] { return !HttpServer::current_client_connected(); };
  std::unique_lock lock(mutex_, std::defer_lock);
  while (!lock.try_lock_until(std::min(deadline, Clock::now() + kWaitSlice))) {
    if (Clock::now() >= deadline)
      return ApiError{504, "timeout", "the request waited longer than this server's limit", ""};
    if (gone()) return client_gone();
  }
  if (!ctx_) {
    engine::ContextParams params = state.options.context;
    params.n_ctx = n_ctx;
    params.n_threads = std::max(1, state.scheduler->threads_per_slot());
    auto ctx = engine::Context::create(state.model, params);
    if (!ctx) return bad(500, "cannot make a context for embeddings: " + ctx.error());
    ctx_ = std::move(*ctx);
  }
  const auto stop = [&] { return Clock::now() > deadline || gone(); };
  Embeddings out;
  out.vectors.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (Status s = ctx_->embed(tokens[i], out.vectors[i], stop); !s) {
      if (Clock::now() > deadline) return too_late();
      if (gone()) return client_gone();
      return bad(500, fmt::format("embedding '{}': {}", input_param(r, i), s.error()));
    }
    out.n_tokens += static_cast<int64_t>(tokens[i].size());
  }
  out.seconds = platform::seconds_since(t0);
  return out;
}

std::string embedding_base64(const std::vector<float>& v) {
  // OpenAI's format: the float32 values' bytes, little-endian (this machine's order on x86).
  static_assert(std::endian::native == std::endian::little);
  const size_t n_bytes = v.size() * sizeof(float);
  std::string out(sodium_base64_encoded_len(n_bytes, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(v.data()),
                    n_bytes, sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

}  // namespace hearth::app
