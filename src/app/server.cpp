// The HTTP side of hearth serve: cpp-httplib setup, the checks every request passes
// (Host, key, CORS), errors raised outside handlers, /health and /metrics.
#include "app/server.h"

#include <fmt/core.h>
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <mutex>

#include "app/chat_session.h"
#include "app/server_auth.h"
#include "app/server_connection.h"
#include "app/server_routes.h"
#include "platform/clock.h"

namespace hearth::app {
namespace {

using Clock = platform::SteadyClock;

// When the current request started (httplib runs one request at a time per thread).
thread_local Clock::time_point t_request_start;

bool needs_key(const std::string& path) {
  return path.starts_with("/v1/") || path.starts_with("/api/") || path == "/metrics";
}

// The route name for metrics: known routes by name, everything else as "other" (so that
// scanning random paths cannot blow up the number of series).
std::string metric_route(const std::string& path) {
  static const char* const kRoutes[] = {"/v1/chat/completions",
                                        "/v1/completions",
                                        "/v1/models",
                                        "/v1/embeddings",
                                        "/api/chat",
                                        "/api/generate",
                                        "/api/embed",
                                        "/api/embeddings",
                                        "/api/tags",
                                        "/api/show",
                                        "/api/version",
                                        "/health",
                                        "/metrics",
                                        "/",
                                        "/chat.css",
                                        "/chat.js"};
  for (const char* r : kRoutes)
    if (path == r) return r;
  if (path.starts_with("/v1/models/")) return "/v1/models/{id}";
  return "other";
}

void set_error(const httplib::Request& req, httplib::Response& res, int status, const char* type,
               const std::string& message) {
  res.status = status;
  if (req.path.starts_with("/api/"))
    res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
  else
    res.set_content(openai_error_body(status, type, message), "application/json");
}

// True when the request comes with a body that httplib would read after the pre-routing
// handler (so refusing it there leaves the body unread on the connection).
bool has_body(const httplib::Request& req) {
  return req.has_header("Transfer-Encoding") ||
         (req.has_header("Content-Length") && req.get_header_value("Content-Length") != "0");
}

// Beyond max_connections (written whole by the accept thread).
std::string refusal_message(int max_connections) {
  return fmt::format(
      "the server has its limit of {} open connections; try again shortly (hearth serve "
      "--max-connections raises it)",
      max_connections);
}

std::string timeout_message(double read_timeout_seconds) {
  return fmt::format("the request did not arrive whole within {} s; connection closed",
                     read_timeout_seconds);
}

// A whole HTTP/1.1 response with OpenAI's error JSON, closing the connection.
std::string raw_error_response(int status, const char* reason, const char* type,
                               const std::string& message) {
  const std::string body = openai_error_body(status, type, message);
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      status, reason, body.size(), body);
}

ConnectionLimits connection_limits(const ServerOptions& o) {
  ConnectionLimits limits;
  limits.max_connections = o.max_connections;
  limits.read_timeout = std::chrono::milliseconds(std::llround(o.read_timeout_seconds * 1000));
  limits.refusal_response = raw_error_response(503, "Service Unavailable", "server_busy",
                                               refusal_message(o.max_connections));
  limits.timeout_response = raw_error_response(408, "Request Timeout", "request_timeout",
                                               timeout_message(o.read_timeout_seconds));
  return limits;
}

// Connection counters in Prometheus text format, after Metrics::render's.
std::string connection_metrics(const ConnectionStats& c) {
  return "# HELP hearth_http_connections_open Connections being served now.\n"
         "# TYPE hearth_http_connections_open gauge\n"
         "hearth_http_connections_open " +
         std::to_string(c.open) +
         "\n# HELP hearth_http_connections_refused_total Connections answered 503 because the "
         "connection limit was reached.\n"
         "# TYPE hearth_http_connections_refused_total counter\n"
         "hearth_http_connections_refused_total " +
         std::to_string(c.refused) +
         "\n# HELP hearth_http_connections_timed_out_total Connections closed because a request "
         "did not arrive within the read timeout.\n"
         "# TYPE hearth_http_connections_timed_out_total counter\n"
         "hearth_http_connections_timed_out_total " +
         std::to_string(c.timed_out) + "\n";
}

}  // namespace

struct Server::Impl {
  Impl(const engine::Model& model, const ServerOptions& options)
      : state{model, {}, {}, {}, nullptr, {}, 0}, http(connection_limits(options)) {}
  ServerState state;
  HttpServer http;
  int bound_port = -1;
  nlohmann::json sandbox;  // set by start(), before any request
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (impl_) impl_->http.stop();
}

Expected<std::unique_ptr<Server>> Server::create(const engine::Model& model,
                                                 ServerOptions options) {
  if (options.api_key.empty()) return make_error("the server needs an API key");
  if (!is_loopback_address(options.listen) && options.api_key.size() < 32)
    return make_error(
        "refusing to listen on {} (reachable from other machines) without a strong API key",
        options.listen);
  if (options.port < 0 || options.port > 65535)
    return make_error("port {} is out of range (0 to 65535)", options.port);
  if (options.max_body_bytes < 1024)
    return make_error("the body size limit must be at least 1024 bytes");
  if (!(options.timeout_seconds > 0)) return make_error("the request timeout must be positive");
  if (!(options.read_timeout_seconds >= 0.1 && options.read_timeout_seconds <= 3600))
    return make_error("the read timeout must be 0.1 to 3600 seconds");
  if (options.max_connections <= options.n_parallel + options.queue_max)
    return make_error(
        "the connection limit ({}) must exceed the slots plus the queue ({}): every running or "
        "waiting request holds a connection",
        options.max_connections, options.n_parallel + options.queue_max);
  auto impl = std::make_unique<Impl>(model, options);
  ServerState& st = impl->state;
  st.options = std::move(options);
  st.started_unix = platform::unix_seconds();
  st.chat_template_source = model.chat_template().value_or(engine::kChatMlTemplate);
  auto tmpl = engine::ChatTemplate::parse(st.chat_template_source);
  if (!tmpl)
    return make_error("{}: the model's chat template cannot be used: {}", model.gguf().name(),
                      tmpl.error());
  st.chat_template = std::move(*tmpl);

  HttpServer& http = impl->http;
  http.set_payload_max_length(st.options.max_body_bytes);
  http.set_tcp_nodelay(true);

  // A request answered here never has its body read: its connection closes after the answer
  // so that the body is not taken for the next request.
  const auto refused = [](const httplib::Request& req) {
    if (has_body(req)) HttpServer::close_current_connection_after_response();
    return httplib::Server::HandlerResponse::Handled;
  };
  http.set_pre_routing_handler([&st, refused](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    if (!req.has_header("Host") || !host_allowed(req.get_header_value("Host"), st.options.listen)) {
      set_error(req, res, 403, "forbidden",
                "the Host header names neither this machine nor this server's address; refused as "
                "a possible DNS "
                "rebinding attack");
      return refused(req);
    }
    // httplib's body size limit covers neither chunked nor compressed bodies (a 300 KB gzip
    // body became 300 MB in memory): only plain bodies with a Content-Length are taken.
    if (req.has_header("Transfer-Encoding")) {
      set_error(req, res, 411, "invalid_request_error",
                "send the request body with a Content-Length (chunked bodies are not accepted)");
      return refused(req);
    }
    if (req.has_header("Content-Encoding") &&
        req.get_header_value("Content-Encoding") != "identity") {
      set_error(req, res, 415, "invalid_request_error",
                "send the request body uncompressed (Content-Encoding is not accepted)");
      return refused(req);
    }
    if (!st.options.cors_origin.empty() &&
        req.get_header_value("Origin") == st.options.cors_origin) {
      res.set_header("Access-Control-Allow-Origin", st.options.cors_origin);
      res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        return refused(req);
      }
    }
    if (needs_key(req.path) &&
        !bearer_matches(req.get_header_value("Authorization"), st.options.api_key)) {
      set_error(req, res, 401, "invalid_request_error",
                req.has_header("Authorization")
                    ? "the API key is wrong; `hearth key show` prints this server's key"
                    : "no API key: send 'Authorization: Bearer KEY' (`hearth key show` prints it)");
      return refused(req);
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_error_handler([&st](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error
    if (HttpServer::current_request_timed_out()) {
      set_error(req, res, 408, "request_timeout", timeout_message(st.options.read_timeout_seconds));
      return;
    }
    switch (res.status) {
      case 404:
        set_error(req, res, 404, "not_found", "no such endpoint: " + req.method + " " + req.path);
        break;
      case 413:
        set_error(req, res, 413, "request_too_large",
                  "the request body is larger than this server's limit of " +
                      std::to_string(st.options.max_body_bytes) + " bytes");
        break;
      case 405:
        set_error(req, res, 405, "invalid_request_error", "method not allowed");
        break;
      default:
        set_error(req, res, res.status, "invalid_request_error", "bad request");
        break;
    }
  });
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        set_error(req, res, 500, "server_error", "internal error while handling the request");
      });
  http.set_logger([&st](const httplib::Request& req, const httplib::Response& res) {
    const double seconds = platform::seconds_since(t_request_start);
    st.metrics.record_request(metric_route(req.path), res.status, seconds);
  });

  http.Get("/health", [&st, self = impl.get()](const httplib::Request&, httplib::Response& res) {
    const Scheduler::Stats s = st.scheduler->stats();
    res.set_content(
        nlohmann::json{{"status", "ok"},
                       {"slots", s.slots},
                       {"slots_busy", s.busy},
                       {"queued", s.queued},
                       {"connections", self->http.stats().open},
                       {"sandbox", self->sandbox}}
            .dump(),
        "application/json");
  });
  http.Get("/metrics", [&st, &http](const httplib::Request&, httplib::Response& res) {
    const Scheduler::Stats s = st.scheduler->stats();
    res.set_content(st.metrics.render(s.slots, s.busy, s.queued) + connection_metrics(http.stats()),
                    "text/plain; version=0.0.4");
  });
  register_openai_routes(http, st);
  register_ollama_routes(http, st);
  register_page_routes(http);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::bind() {
  const ServerOptions& o = impl_->state.options;
  if (o.port == 0) {
    const int port = impl_->http.bind_to_any_port(o.listen);
    if (port <= 0) return make_error("cannot bind {}: no free port", o.listen);
    impl_->bound_port = port;
  } else {
    if (!impl_->http.bind_to_port(o.listen, o.port))
      return make_error(
          "cannot bind {}:{}: the port is in use or the address is not on this machine "
          "(try --port)",
          o.listen, o.port);
    impl_->bound_port = o.port;
  }
  impl_->http.raise_backlog();
  return Status::ok();
}

int Server::port() const { return impl_->bound_port; }
int Server::threads_per_slot() const {
  return impl_->state.scheduler ? impl_->state.scheduler->threads_per_slot() : 0;
}

Status Server::start(const platform::SandboxState& sandbox) {
  ServerState& st = impl_->state;
  if (st.scheduler) return make_error("the server is already started");
  SchedulerOptions so;
  so.n_slots = st.options.n_parallel;
  so.queue_max = st.options.queue_max;
  so.context = st.options.context;
  auto sched = Scheduler::create(st.model, so);
  if (!sched) return Error{sched.error()};
  st.scheduler = std::move(*sched);
  impl_->sandbox = {{"confined", sandbox.fs_restricted || sandbox.seccomp},
                    {"landlock_abi", sandbox.abi},
                    {"files_restricted", sandbox.fs_restricted},
                    {"tcp_refused", sandbox.tcp_restricted},
                    {"seccomp", sandbox.seccomp},
                    {"missing", sandbox.missing()}};
  return Status::ok();
}

Status Server::run() {
  if (impl_->bound_port < 0) return make_error("the server is not bound; call bind() first");
  if (!impl_->state.scheduler) return make_error("the server is not started; call start() first");
  if (!impl_->http.listen_after_bind()) return make_error("the server stopped with an error");
  return Status::ok();
}

void Server::stop() {
  // Streaming handlers wait on their jobs: end the jobs first so the HTTP threads can exit.
  if (impl_->state.scheduler) impl_->state.scheduler->stop();
  impl_->http.stop();
}

}  // namespace hearth::app
