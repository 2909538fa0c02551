// hearth serve: the OpenAI- and Ollama-compatible HTTP server (see app/server.h).
// hearth key show|rotate: the server's API key.
#include <fmt/core.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "app/config.h"
#include "app/model_paths.h"
#include "app/server.h"
#include "app/server_auth.h"
#include "app/server_history.h"
#include "cli/common.h"
#include "cli/confine.h"
#include "cli/vault_access.h"

namespace hearth::cli {

void register_serve(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    ContextFlags context;
    std::string listen;
    int port = app::kDefaultServerPort;
    int parallel = 2;
    int queue = 16;
    double timeout = 300;
    size_t max_body = 1u << 20;
    std::string cors_origin;
    bool no_history = false;
    bool log_content = false;
    int max_connections = 128;
    double read_timeout = 10;
    bool require_sandbox = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model over HTTP on this machine (OpenAI- and Ollama-compatible APIs)");
  cmd->footer(fmt::format(
      "Binds 127.0.0.1:{} by default. Every API request needs 'Authorization: Bearer KEY'; the key "
      "is\n"
      "created on first start (`hearth key show` prints it). Other machines can connect only with\n"
      "--listen ADDR.\n"
      "Hostile clients: headers are limited to 64 KiB, a connection serves at most 100 requests,\n"
      "a write waits at most 10 s for the client, and request bodies must be plain\n"
      "(Content-Length; no chunked or compressed uploads: 411, 415).",
      app::kDefaultServerPort));
  o->model.add(cmd);
  cmd->add_option("--port", o->port, "TCP port (0: any free port)")->capture_default_str();
  cmd->add_option(
      "--listen", o->listen,
      "Address to bind instead of 127.0.0.1, e.g. a LAN address (reachable from other machines; "
      "the API key guards it)");
  cmd->add_option("--parallel", o->parallel, "Requests generated at the same time (slots, decoded in one batch)")
      ->capture_default_str();
  cmd->add_option("--queue", o->queue, "Requests that may wait for a slot; more get 503")
      ->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "Seconds a request may take, waiting included")
      ->capture_default_str();
  cmd->add_option("--max-body", o->max_body, "Largest request body in bytes")
      ->capture_default_str();
  cmd->add_option(
      "--cors-origin", o->cors_origin,
      "Allow browser pages from this origin (e.g. http://localhost:3000) to call the API");
  cmd->add_option("--max-connections", o->max_connections,
                  "Connections served at once (one thread each); more get 503 and are closed")
      ->capture_default_str();
  cmd->add_option("--read-timeout", o->read_timeout,
                  "Seconds a client has to send a whole request (headers and body), from "
                  "connecting or from its previous response; slower or silent connections are "
                  "closed (408)")
      ->capture_default_str();
  cmd->add_flag("--require-sandbox", o->require_sandbox,
                "Refuse to serve unless the process can confine itself fully (Landlock with "
                "network rules, and seccomp)");
  cmd->add_flag("--log-content", o->log_content,
                "Write each request's prompt and answer text to stderr (off by default: no log "
                "ever holds what users write)");
  cmd->add_flag("--no-history", o->no_history,
                "Keep nothing: do not store chats in the encrypted vault (by default each "
                "finished chat is stored; `hearth history` lists them)");
  o->context.add(cmd);
  cmd->callback([o, cmd, &exit_code] {
    // The config's [serve] values apply where no flag was given (app/config.h).
    const auto& cfg = app::load_config();
    if (!cfg) {
      exit_code = fail(cfg.error());
      return;
    }
    if (!cmd->count("--port") && cfg->serve.port) o->port = *cfg->serve.port;
    if (!cmd->count("--listen") && cfg->serve.listen) o->listen = *cfg->serve.listen;
    if (!cmd->count("--parallel") && cfg->serve.parallel) o->parallel = *cfg->serve.parallel;
    if (!cmd->count("--cors-origin") && cfg->serve.cors_origin)
      o->cors_origin = *cfg->serve.cors_origin;
    if (o->parallel < 1 || o->parallel > 64) {
      exit_code = fail("--parallel must be 1 to 64");
      return;
    }
    if (o->queue < 0 || o->queue > 4096) {
      exit_code = fail("--queue must be 0 to 4096");
      return;
    }
    if (!(o->timeout > 0 && o->timeout <= 86400)) {
      exit_code = fail("--timeout must be 1 to 86400 seconds");
      return;
    }
    if (o->max_body < 1024 || o->max_body > (size_t{1} << 30)) {
      exit_code = fail("--max-body must be 1024 to 1073741824 bytes");
      return;
    }
    if (o->max_connections <= o->parallel + o->queue || o->max_connections > 16384) {
      exit_code = fail(fmt::format(
          "--max-connections must be {} to 16384 (more than --parallel + --queue: each running "
          "or waiting request holds one)",
          o->parallel + o->queue + 1));
      return;
    }
    if (!(o->read_timeout >= 0.1 && o->read_timeout <= 3600)) {
      exit_code = fail("--read-timeout must be 0.1 to 3600 seconds");
      return;
    }
    if (o->port < 0 || o->port > 65535) {
      exit_code = fail("--port must be 0 to 65535");
      return;
    }
    auto key = app::load_or_create_api_key();
    if (!key) {
      exit_code = fail(key.error());
      return;
    }
    // The vault opens before the model loads, so that a missing passphrase fails fast.
    std::unique_ptr<app::Vault> vault;
    if (!o->no_history) {
      auto v = open_vault(true, /*may_prompt=*/false);
      if (!v) {
        exit_code = fail(v.error() + ", or run hearth serve with --no-history to keep nothing");
        return;
      }
      vault = std::move(*v);
    }
    auto path = app::resolve_model(o->model.model);
    if (!path) {
      exit_code = fail(path.error());
      return;
    }
    auto model = engine::Model::load(*path);
    if (!model) {
      exit_code = fail(model.error());
      return;
    }
    std::shared_ptr<app::ServerHistory> history;
    if (vault) {
      const std::string label = model_label(o->model.model);
      if (Status s = vault->audit("model_loaded", {{"model", label}}); !s)
        fmt::print(stderr, "hearth: warning: the audit log was not written: {}\n", s.error());
      history = std::make_shared<app::ServerHistory>(std::move(vault), label);
    }
    auto ctx = o->context.params(**model);
    if (!ctx) {
      exit_code = fail(ctx.error());
      return;
    }

    app::ServerOptions so;
    if (!o->listen.empty()) so.listen = o->listen;
    so.port = o->port;
    so.api_key = *key;
    so.cors_origin = o->cors_origin;
    so.max_body_bytes = o->max_body;
    so.n_parallel = o->parallel;
    so.queue_max = o->queue;
    so.timeout_seconds = o->timeout;
    so.max_connections = o->max_connections;
    so.read_timeout_seconds = o->read_timeout;
    so.context = *ctx;
    so.model_id = std::filesystem::path(*path).stem().string();
    so.history = history;
    so.log_content = o->log_content;
    const std::string listen = so.listen;
    const std::string model_id = so.model_id;

    // SIGINT / SIGTERM stop the server: blocked in every thread, taken by one waiter.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto server = app::Server::create(**model, std::move(so));
    if (!server) {
      exit_code = fail(server.error());
      return;
    }
    if (Status s = (*server)->bind(); !s) {
      exit_code = fail(s.error());
      return;
    }
    // Start-up is done: confine before any thread starts (the slots' workers, the HTTP
    // pool and the signal waiter all come after and inherit the sandbox).
    auto sandbox = confine(*path, o->require_sandbox);
    if (!sandbox) {
      exit_code = fail(sandbox.error());
      return;
    }
    if (history)
      if (Status s = history->audit("sandbox", sandbox_audit(*sandbox)); !s)
        fmt::print(stderr, "hearth: warning: the audit log was not written: {}\n", s.error());
    if (Status s = (*server)->start(*sandbox); !s) {
      exit_code = fail(s.error());
      return;
    }
    const std::string host = listen.find(':') != std::string::npos ? "[" + listen + "]" : listen;
    fmt::print("hearth: serving {} at http://{}:{}/ ({} slots x {} threads, context {} tokens)\n",
               model_id, host, (*server)->port(), o->parallel, (*server)->threads_per_slot(),
               ctx->n_ctx);
    fmt::print("hearth: sandbox: {}\n", sandbox->describe());
    fmt::print("hearth: history: {}\n",
               history ? "finished chats are stored encrypted in the vault (--no-history: none)"
                       : "off (--no-history)");
    fmt::print("hearth: API key: `hearth key show`; Ctrl-C stops the server\n");
    if (o->log_content)
      fmt::print(stderr,
                 "hearth: --log-content: prompts and answers go to stderr, marked [content]\n");
    std::fflush(stdout);
    app::Server* srv = server->get();
    std::thread waiter([srv, signals] {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGINT || sig == SIGTERM) srv->stop();
    });
    Status s = (*server)->run();
    // Wake the waiter if the server stopped on its own.
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    if (!s) exit_code = fail(s.error());
  });
}

void register_key(CLI::App& app, int& exit_code) {
  CLI::App* cmd =
      app.add_subcommand("key", "Show or rotate the API key that `hearth serve` requires");
  cmd->require_subcommand(1);
  CLI::App* show = cmd->add_subcommand("show", "Print the API key (creating one if there is none)");
  show->callback([&exit_code] {
    auto key = app::load_or_create_api_key();
    if (!key) {
      exit_code = fail(key.error());
      return;
    }
    fmt::print("{}\n", *key);
  });
  CLI::App* rotate = cmd->add_subcommand(
      "rotate", "Replace the API key with a new random one (restart the server)");
  rotate->callback([&exit_code] {
    auto key = app::rotate_api_key();
    if (!key) {
      exit_code = fail(key.error());
      return;
    }
    fmt::print("{}\n", *key);
    fmt::print(stderr, "hearth: new key written to {}; restart `hearth serve` to use it\n",
               app::api_key_path());
  });
}

}  // namespace hearth::cli
