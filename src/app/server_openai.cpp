// OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/models, /v1/embeddings.
// Streams are server-sent events: "data: {json}\n\n" per piece, then "data: [DONE]\n\n".
#include <chrono>
#include <nlohmann/json.hpp>

#include "app/server_routes.h"
#include "platform/clock.h"

namespace hearth::app {
namespace {

using nlohmann::json;

json error_json(const ApiError& e) {
  return json{{"error",
               {{"message", e.message},
                {"type", e.type},
                {"param", e.param.empty() ? json(nullptr) : json(e.param)},
                {"code", nullptr}}}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_json(e).dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

std::string sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

json usage_json(const engine::GenerateResult& r) {
  return json{{"prompt_tokens", r.n_prompt},
              {"completion_tokens", r.n_decoded},
              {"total_tokens", r.n_prompt + r.n_decoded}};
}

// One handler for both endpoints: they differ only in the JSON shapes.
void handle_generation(ServerState& state, ApiKind kind, const httplib::Request& req,
                       httplib::Response& res) {
  ParseResult parsed = parse_request(kind, req.body);
  if (!parsed.request) return send_error(res, parsed.error);
  // Shared with the stream's content provider, which stores the finished chat.
  const auto request = std::make_shared<const ParsedRequest>(std::move(*parsed.request));
  const ParsedRequest& r = *request;
  auto started = start_job(state, r);
  if (auto* e = std::get_if<ApiError>(&started)) return send_error(res, *e);
  std::shared_ptr<Job> job = std::get<std::shared_ptr<Job>>(started);

  const bool chat = kind == ApiKind::kOpenAiChat;
  const std::string id = response_id(chat ? "chatcmpl" : "cmpl");
  const int64_t created = platform::unix_seconds();
  const std::string model = state.options.model_id;
  const char* object = chat ? "chat.completion" : "text_completion";

  if (!r.stream) {
    const Expected<engine::GenerateResult>& result = job->wait_result();
    record_generation(state, result);
    if (!result) return send_error(res, job_error(*job, result.error()));
    if (job->expired()) return send_error(res, job_error(*job, "generation stopped"));
    store_history(state, r, *result);
    json choice = {
        {"index", 0}, {"finish_reason", finish_reason(result->reason)}, {"logprobs", nullptr}};
    if (chat)
      choice["message"] = {{"role", "assistant"}, {"content", result->text}};
    else
      choice["text"] = result->text;
    json body = {{"id", id},
                 {"object", object},
                 {"created", created},
                 {"model", model},
                 {"choices", json::array({choice})},
                 {"usage", usage_json(*result)},
                 {"system_fingerprint", "hearth"}};
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    return;
  }

  const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
  auto chunk = [=](json choice) {
    choice["index"] = 0;
    choice["logprobs"] = nullptr;
    return json{{"id", id},
                {"object", chunk_object},
                {"created", created},
                {"model", model},
                {"system_fingerprint", "hearth"},
                {"choices", json::array({std::move(choice)})}};
  };
  const bool include_usage = r.include_usage;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [&state, job, request, chunk, chat, include_usage, id, created, model, chunk_object](
          size_t, httplib::DataSink& sink) {
        if (chat) {
          const std::string first = sse(chunk(
              {{"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}}));
          if (!sink.write(first.data(), first.size())) {
            job->cancel();
            return false;
          }
        }
        auto piece = [&](std::string_view text) {
          json c = chat ? json{{"delta", {{"content", text}}}, {"finish_reason", nullptr}}
                        : json{{"text", text}, {"finish_reason", nullptr}};
          return sse(chunk(std::move(c)));
        };
        auto end = [&](const Expected<engine::GenerateResult>& result) {
          std::string out;
          if (!result || job->expired()) {
            out = sse(error_json(job_error(*job, result ? "generation stopped" : result.error())));
          } else {
            store_history(state, *request, *result);
            json c = chat ? json{{"delta", json::object()},
                                 {"finish_reason", finish_reason(result->reason)}}
                          : json{{"text", ""}, {"finish_reason", finish_reason(result->reason)}};
            out = sse(chunk(std::move(c)));
            if (include_usage)
              out += sse(json{{"id", id},
                              {"object", chunk_object},
                              {"created", created},
                              {"model", model},
                              {"choices", json::array()},
                              {"usage", usage_json(*result)}});
          }
          return out + "data: [DONE]\n\n";
        };
        return pump_job(state, *job, sink, piece, end);
      },
      [job](bool) { job->cancel(); });
}

void handle_embeddings(ServerState& state, const httplib::Request& req, httplib::Response& res) {
  const EmbeddingParseResult parsed = parse_embedding_request(EmbedApi::kOpenAi, req.body);
  if (!parsed.request) return send_error(res, parsed.error);
  const EmbeddingRequest& r = *parsed.request;
  auto done = state.embedder.embed(state, r);
  if (auto* e = std::get_if<ApiError>(&done)) return send_error(res, *e);
  const Embeddings& emb = std::get<Embeddings>(done);
  json data = json::array();
  for (size_t i = 0; i < emb.vectors.size(); ++i) {
    data.push_back(
        {{"object", "embedding"},
         {"index", i},
         {"embedding", r.base64 ? json(embedding_base64(emb.vectors[i])) : json(emb.vectors[i])}});
  }
  json body = {{"object", "list"},
               {"data", std::move(data)},
               {"model", state.options.model_id},
               {"usage", {{"prompt_tokens", emb.n_tokens}, {"total_tokens", emb.n_tokens}}}};
  res.set_content(body.dump(), "application/json");
}

}  // namespace

void register_openai_routes(httplib::Server& http, ServerState& state) {
  http.Post("/v1/embeddings", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(state, req, res);
  });
  http.Post("/v1/chat/completions", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_generation(state, ApiKind::kOpenAiChat, req, res);
  });
  http.Post("/v1/completions", [&state](const httplib::Request& req, httplib::Response& res) {
    handle_generation(state, ApiKind::kOpenAiCompletion, req, res);
  });
  http.Get("/v1/models", [&state](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", state.options.model_id},
              {"object", "model"},
              {"created", state.started_unix},
              {"owned_by", "hearth"}};
    json body = {{"object", "list"}, {"data", json::array({m})}};
    res.set_content(body.dump(), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [&state](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    if (!model_matches(state, name))
      return send_error(res,
                        ApiError{404, "invalid_request_error",
                                 "the model '" + name + "' does not exist; this server serves '" +
                                     state.options.model_id + "'",
                                 "model"});
    json m = {{"id", state.options.model_id},
              {"object", "model"},
              {"created", state.started_unix},
              {"owned_by", "hearth"}};
    res.set_content(m.dump(), "application/json");
  });
}

// Used by server.cpp for errors raised outside the handlers (auth, Host, size, routing).
std::string openai_error_body(int status, const std::string& type, const std::string& message) {
  return error_json(ApiError{status, type, message, ""})
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace hearth::app
