// hearth serve: an HTTP server with OpenAI- and Ollama-compatible APIs for one model.
//
// Safe by default: binds 127.0.0.1; every API request needs "Authorization: Bearer KEY";
// a Host header that is not localhost, an IP literal or the bound name is refused (DNS
// rebinding); no CORS header unless an origin is configured. GET / (the chat page) and
// GET /health need no key (nor the page's /chat.js and /chat.css, which the page loads
// before it has the key); /v1/*, /api/* and /metrics do. Slow or excess connections are
// bounded as described in app/server_connection.h.
// Lifecycle: create() (no threads), bind(), then the caller confines the process
// (platform/sandbox.h, while it has one thread), start() (slot worker threads), run().
// Thread safety: run() blocks in the calling thread; stop() may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "engine/model.h"
#include "platform/sandbox.h"
#include "platform/status.h"

namespace hearth::app {

inline constexpr int kDefaultServerPort = 11435;

class ServerHistory;  // app/server_history.h

struct ServerOptions {
  std::string listen = "127.0.0.1";  // a non-loopback address needs an api_key
  int port = kDefaultServerPort;     // 0: any free port (see Server::port())
  std::string api_key;               // required
  std::string cors_origin;           // empty: same-origin only
  size_t max_body_bytes = 1u << 20;
  int n_parallel = 2;             // slots
  int queue_max = 16;             // requests waiting beyond the slots; more get 503
  double timeout_seconds = 300;   // per request, queueing included
  // Connections served at once (one thread each); more are answered 503 and closed. Must
  // exceed n_parallel + queue_max, since every running or waiting request holds one.
  int max_connections = 128;
  // Seconds a client has to send a whole request (line, headers, body), counted from
  // connecting or from its previous response; slower or silent connections are closed.
  double read_timeout_seconds = 10;
  engine::ContextParams context;  // per slot
  std::string model_id;           // the name the APIs report and accept
  std::shared_ptr<ServerHistory> history;  // finished chats are stored here; null: none
  bool log_content = false;       // prompts and answers to stderr (app/content_log.h)
};

class Server {
 public:
  static Expected<std::unique_ptr<Server>> create(const engine::Model& model,
                                                  ServerOptions options);
  ~Server();
  // Binds the listening socket; after success port() is the real port.
  Status bind();
  int port() const;
  // Starts the slots' worker threads. `sandbox` is the confinement in force, which GET
  // /health reports.
  Status start(const platform::SandboxState& sandbox);
  // Serves until stop(); needs bind() and start().
  Status run();
  void stop();
  int threads_per_slot() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::app
