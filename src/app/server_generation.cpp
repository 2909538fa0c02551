// The helpers of server_routes.h: from a parsed request to a running job, and back.
#include <fmt/format.h>

#include <atomic>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>

#include "app/content_log.h"
#include "app/server_routes.h"
#include "engine/chat_prompt.h"
#include "platform/clock.h"

namespace hearth::app {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

ApiError error_of(int status, std::string type, std::string message, std::string param = "") {
  return ApiError{status, std::move(type), std::move(message), std::move(param)};
}

// --log-content: the number of the request this thread handles. httplib runs a request's
// handler and its streaming content provider on the same thread (server.cpp's request
// timer relies on that too), so start_job and record_generation see the same number.
thread_local uint64_t t_content_request = 0;

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The request's text: the messages for chat kinds, else the prompt (and Ollama's system).
std::string prompt_json(const ParsedRequest& r) {
  if (r.kind == ApiKind::kOpenAiChat || r.kind == ApiKind::kOllamaChat) {
    nlohmann::json messages = nlohmann::json::array();
    for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
    return dump(messages);
  }
  nlohmann::json j{{"prompt", r.prompt}};
  if (!r.system.empty()) j["system"] = r.system;
  return dump(j);
}

}  // namespace

bool model_matches(const ServerState& state, const std::string& name) {
  const std::string id = lower(state.options.model_id);
  std::string n = lower(name);
  if (n.size() > 7 && n.ends_with(":latest")) n.resize(n.size() - 7);
  return n == id || n == id + ".gguf";
}

std::variant<std::vector<int32_t>, ApiError> build_prompt(const ServerState& state,
                                                          const ParsedRequest& r) {
  const engine::Tokenizer& tok = state.model.tokenizer();
  std::vector<int32_t> ids;
  const bool chat = r.kind == ApiKind::kOpenAiChat || r.kind == ApiKind::kOllamaChat ||
                    (r.kind == ApiKind::kOllamaGenerate && !r.raw);
  if (chat) {
    std::vector<engine::ChatMessage> messages = r.messages;
    if (r.kind == ApiKind::kOllamaGenerate) {
      if (!r.system.empty()) messages.push_back({"system", r.system});
      messages.push_back({"user", r.prompt});
    }
    auto prompt = engine::chat_prompt_tokens(state.chat_template, tok, messages);
    if (!prompt) return error_of(400, "invalid_request_error", prompt.error(), "messages");
    ids = std::move(*prompt);
  } else {
    ids = tok.encode(r.prompt, true, false);
  }
  if (ids.empty()) return error_of(400, "invalid_request_error", "the prompt is empty", "prompt");
  const int64_t n_ctx = state.scheduler->n_ctx();
  if (static_cast<int64_t>(ids.size()) >= n_ctx)
    return error_of(
        400, "invalid_request_error",
        fmt::format(
            "the prompt is {} tokens; this server's context holds {} (with room for at least one "
            "answer token); shorten it",
            ids.size(), n_ctx),
        chat ? "messages" : "prompt");
  return ids;
}

std::variant<std::shared_ptr<Job>, ApiError> start_job(ServerState& state, const ParsedRequest& r) {
  if (!model_matches(state, r.model))
    return error_of(404, "invalid_request_error",
                    fmt::format("the model '{}' does not exist; this server serves '{}'", r.model,
                                state.options.model_id),
                    "model");
  if (state.options.log_content) {
    static std::atomic<uint64_t> requests{0};
    t_content_request = ++requests;
    log_content(t_content_request, "prompt", prompt_json(r));
  }
  auto prompt = build_prompt(state, r);
  if (auto* e = std::get_if<ApiError>(&prompt)) return *e;
  engine::GenerateParams gen = r.gen;
  if (!r.seed_set) gen.sampling.seed = std::random_device{}();
  const auto deadline = platform::deadline_after(state.options.timeout_seconds);
  auto job = std::make_shared<Job>(std::move(std::get<std::vector<int32_t>>(prompt)),
                                   std::move(gen), deadline);
  if (Status s = state.scheduler->submit(job); !s) return error_of(503, "server_busy", s.error());
  return job;
}

bool pump_job(
    ServerState& state, Job& job, httplib::DataSink& sink,
    const std::function<std::string(std::string_view)>& format_piece,
    const std::function<std::string(const Expected<engine::GenerateResult>&)>& format_end) {
  std::string text;
  for (;;) {
    text.clear();
    const bool finished = job.wait_next(text, std::chrono::milliseconds(250));
    if (!text.empty()) {
      const std::string chunk = format_piece(text);
      if (!sink.write(chunk.data(), chunk.size())) {
        job.cancel();
        return false;
      }
    } else if (!finished && !sink.is_writable()) {
      job.cancel();
      return false;
    }
    if (finished) break;
  }
  record_generation(state, job.result());
  const std::string end = format_end(job.result());
  if (!sink.write(end.data(), end.size())) return false;
  sink.done();
  return true;
}

void record_generation(ServerState& state, const Expected<engine::GenerateResult>& result) {
  if (!result) return;
  if (state.options.log_content) log_content(t_content_request, "answer", dump(result->text));
  state.metrics.record_generation(result->n_prompt, result->n_prompt_evaluated, result->n_decoded,
                                  result->prefill_seconds, result->decode_seconds);
}

std::string response_id(const char* prefix) {
  static std::atomic<uint64_t> counter{std::random_device{}() |
                                       (uint64_t{std::random_device{}()} << 32)};
  const uint64_t n = counter.fetch_add(0x9e3779b97f4a7c15ull);
  return fmt::format("{}-{:016x}", prefix, n);
}

ApiError job_error(const Job& job, const std::string& message) {
  if (job.expired())
    return error_of(504, "timeout",
                    fmt::format("the request took longer than this server's limit: {}", message));
  return error_of(500, "server_error", message);
}

const char* finish_reason(engine::StopReason reason) {
  switch (reason) {
    case engine::StopReason::kMaxTokens:
    case engine::StopReason::kContextFull:
      return "length";
    default:
      return "stop";
  }
}

}  // namespace hearth::app
