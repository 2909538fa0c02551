// Ollama-compatible routes: /api/chat, /api/generate (NDJSON streams: one JSON object per
// line, the last with "done": true and the eval counts), /api/embed, /api/embeddings,
// /api/tags, /api/show, /api/version.
// Errors are Ollama's shape: {"error": "message"}.
#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "app/server_routes.h"
#include "platform/clock.h"

namespace hearth::app {
namespace {

using nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(dump(json{{"error", message}}), "application/json");
}

std::string now_rfc3339() {
  const int64_t us = platform::unix_microseconds();
  return fmt::format("{}.{:06d}Z", platform::utc_text(us / 1000000, "%Y-%m-%dT%H:%M:%S"),
                     us % 1000000);
}

int64_t ns(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

json details(const ServerState& state) {
  const auto& g = state.model.gguf();
  const std::string arch(g.get_string("general.architecture").value_or(""));
  return json{{"format", "gguf"},
              {"family", arch},
              {"families", json::array({arch})},
              {"parameter_size", ""},
              {"quantization_level", ""}};
}

void handle_generation(ServerState& state, ApiKind kind, const httplib::Request& req,
                       httplib::Response& res) {
  ParseResult parsed = parse_request(kind, req.body);
  if (!parsed.request) return send_error(res, parsed.error.status, parsed.error.message);
  // Shared with the stream's content provider, which stores the finished chat.
  const auto request = std::make_shared<const ParsedRequest>(std::move(*parsed.request));
  const ParsedRequest& r = *request;
  auto started = start_job(state, r);
  if (auto* e = std::get_if<ApiError>(&started)) return send_error(res, e->status, e->message);
  std::shared_ptr<Job> job = std::get<std::shared_ptr<Job>>(started);
  const bool chat = kind == ApiKind::kOllamaChat;
  const std::string model = state.options.model_id;

  auto record = [chat, model](std::string_view text, bool done) {
    json j = {{"model", model}, {"created_at", now_rfc3339()}};
    if (chat)
      j["message"] = {{"role", "assistant"}, {"content", text}};
    else
      j["response"] = text;
    j["done"] = done;
    return j;
  };
  auto final_record = [record](const engine::GenerateResult& g, std::string_view text) {
    json j = record(text, true);
    j["done_reason"] = finish_reason(g.reason);
    j["total_duration"] = ns(g.prefill_seconds + g.decode_seconds);
    j["load_duration"] = 0;
    j["prompt_eval_count"] = g.n_prompt_evaluated;
    j["prompt_eval_duration"] = ns(g.prefill_seconds);
    j["eval_count"] = g.n_decoded;
    j["eval_duration"] = ns(g.decode_seconds);
    return j;
  };

  if (!r.stream) {
    const Expected<engine::GenerateResult>& result = job->wait_result();
    record_generation(state, result);
    if (!result || job->expired()) {
      const ApiError e = job_error(*job, result ? "generation stopped" : result.error());
      return send_error(res, e.status, e.message);
    }
    store_history(state, r, *result);
    res.set_content(dump(final_record(*result, result->text)), "application/json");
    return;
  }
  res.set_chunked_content_provider(
      "application/x-ndjson",
      [&state, job, request, record, final_record](size_t, httplib::DataSink& sink) {
        auto piece = [&](std::string_view text) { return dump(record(text, false)) + "\n"; };
        auto end = [&](const Expected<engine::GenerateResult>& result) {
          if (!result || job->expired())
            return dump(json{
                       {"error",
                        job_error(*job, result ? "generation stopped" : result.error()).message}}) +
                   "\n";
          store_history(state, *request, *result);
          return dump(final_record(*result, "")) + "\n";
        };
        return pump_job(state, *job, sink, piece, end);
      },
      [job](bool) { job->cancel(); });
}

// /api/embed ({"embeddings": [[...]]} with counts) and the older /api/embeddings
// ({"embedding": [...]}).
void handle_embeddings(ServerState& state, EmbedApi api, const httplib::Request& req,
                       httplib::Response& res) {
  const EmbeddingParseResult parsed = parse_embedding_request(api, req.body);
  if (!parsed.request) return send_error(res, parsed.error.status, parsed.error.message);
  auto done = state.embedder.embed(state, *parsed.request);
  if (auto* e = std::get_if<ApiError>(&done)) return send_error(res, e->status, e->message);
  const Embeddings& emb = std::get<Embeddings>(done);
  json body;
  if (api == EmbedApi::kOllamaLegacy) {
    body = {{"embedding", emb.vectors.at(0)}};
  } else {
    body = {{"model", state.options.model_id},
            {"embeddings", emb.vectors},
            {"total_duration", ns(emb.seconds)},
            {"load_duration", 0},
            {"prompt_eval_count", emb.n_tokens}};
  }
  res.set_content(dump(body), "application/json");
}

}  // namespace

void register_ollama_routes(httplib::Server& http, ServerState& state) {
  http.Post("/api/embed", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(state, EmbedApi::kOllamaEmbed, req, res);
  });
  http.Post("/api/embeddings", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(state, EmbedApi::kOllamaLegacy, req, res);
  });
  http.Post("/api/chat", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_generation(state, ApiKind::kOllamaChat, req, res);
  });
  http.Post("/api/generate", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_generation(state, ApiKind::kOllamaGenerate, req, res);
  });
  http.Get("/api/tags", [&state](const httplib::Request&, httplib::Response& res) {
    json m = {{"name", state.options.model_id},
              {"model", state.options.model_id},
              {"modified_at", now_rfc3339()},
              {"size", state.model.gguf().file_size()},
              {"digest", ""},
              {"details", details(state)}};
    res.set_content(dump(json{{"models", json::array({m})}}), "application/json");
  });
  http.Get("/api/version", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump(json{{"version", "0.1.0"}}), "application/json");
  });
  http.Post("/api/show", [&state](const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return send_error(res, 400, "the request body is not a JSON object");
    std::string name;
    for (const char* key : {"model", "name"}) {
      auto it = body.find(key);
      if (it != body.end() && it->is_string()) name = it->get<std::string>();
    }
    if (name.empty()) return send_error(res, 400, "'model' is required");
    if (!model_matches(state, name))
      return send_error(res, 404,
                        fmt::format("model '{}' not found; this server serves '{}'", name,
                                    state.options.model_id));
    const auto& h = state.model.hparams();
    json info = {{"general.architecture", details(state)["family"]},
                 {"context_length", h.n_ctx_train},
                 {"embedding_length", h.n_embd},
                 {"block_count", h.n_layer},
                 {"vocab_size", h.n_vocab}};
    json out = {{"modelfile", ""},
                {"parameters", ""},
                {"template", state.chat_template_source},
                {"details", details(state)},
                {"model_info", info}};
    res.set_content(dump(out), "application/json");
  });
}

}  // namespace hearth::app
