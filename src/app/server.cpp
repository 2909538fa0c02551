// The HTTP side of hearth serve: cpp-httplib setup, the checks every request passes
// (Host, key, CORS), errors raised outside handlers, /health and /metrics.
#include "app/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <mutex>

#include "app/chat_session.h"
#include "app/server_auth.h"
#include "app/server_routes.h"

namespace hearth::app {
namespace {

using Clock = std::chrono::steady_clock;

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

// httplib listens with a backlog of 5 (a compile-time constant of the shared library); a
// burst of connections overflows that and clients wait a 1 s SYN retry. Linux lets a
// listening socket's backlog be raised by calling listen() again.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog() { ::listen(svr_sock_.load(), SOMAXCONN); }
};

}  // namespace

struct Server::Impl {
  explicit Impl(const engine::Model& model) : state{model, {}, {}, {}, nullptr, {}, 0} {}
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
  auto impl = std::make_unique<Impl>(model);
  ServerState& st = impl->state;
  st.options = std::move(options);
  st.started_unix = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  st.chat_template_source = model.chat_template().value_or(kChatMlTemplate);
  auto tmpl = engine::ChatTemplate::parse(st.chat_template_source);
  if (!tmpl)
    return make_error("{}: the model's chat template cannot be used: {}", model.gguf().name(),
                      tmpl.error());
  st.chat_template = std::move(*tmpl);

  httplib::Server& http = impl->http;
  // Every waiting or streaming request holds an HTTP thread: enough for all slots and the
  // whole queue, plus a few for quick requests (health, metrics, errors).
  const size_t n_threads = static_cast<size_t>(st.options.n_parallel + st.options.queue_max + 8);
  http.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
  http.set_payload_max_length(st.options.max_body_bytes);
  http.set_read_timeout(10, 0);  // a half-open request frees its thread after 10 s
  http.set_write_timeout(10, 0);
  http.set_keep_alive_timeout(2);  // idle keep-alive connections also delay shutdown
  http.set_tcp_nodelay(true);

  http.set_pre_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    if (!req.has_header("Host") || !host_allowed(req.get_header_value("Host"), st.options.listen)) {
      set_error(req, res, 403, "forbidden",
                "the Host header names neither this machine nor this server's address; refused as "
                "a possible DNS "
                "rebinding attack");
      return httplib::Server::HandlerResponse::Handled;
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
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (needs_key(req.path) &&
        !bearer_matches(req.get_header_value("Authorization"), st.options.api_key)) {
      set_error(req, res, 401, "invalid_request_error",
                req.has_header("Authorization")
                    ? "the API key is wrong; `hearth key show` prints this server's key"
                    : "no API key: send 'Authorization: Bearer KEY' (`hearth key show` prints it)");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  http.set_error_handler([&st](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error
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
    const double seconds = std::chrono::duration<double>(Clock::now() - t_request_start).count();
    st.metrics.record_request(metric_route(req.path), res.status, seconds);
  });

  http.Get("/health", [&st, self = impl.get()](const httplib::Request&, httplib::Response& res) {
    const Scheduler::Stats s = st.scheduler->stats();
    res.set_content(
        nlohmann::json{{"status", "ok"},
                       {"slots", s.slots},
                       {"slots_busy", s.busy},
                       {"queued", s.queued},
                       {"sandbox", self->sandbox}}
            .dump(),
        "application/json");
  });
  http.Get("/metrics", [&st](const httplib::Request&, httplib::Response& res) {
    const Scheduler::Stats s = st.scheduler->stats();
    res.set_content(st.metrics.render(s.slots, s.busy, s.queued), "text/plain; version=0.0.4");
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
