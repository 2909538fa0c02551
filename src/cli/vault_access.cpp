#include "cli/vault_access.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "app/model_paths.h"
#include "app/model_store.h"
#include "app/paths.h"

namespace hearth::cli {
namespace {

// Reads one line from the terminal with echo off.
Expected<std::string> prompt_tty(const std::string& prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return make_error("no terminal to ask for the passphrase; set HEARTH_PASSPHRASE");
  termios old{};
  const bool have_term = tcgetattr(fd, &old) == 0;
  if (have_term) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, prompt.data(), prompt.size());
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  if (have_term) tcsetattr(fd, TCSAFLUSH, &old);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

}  // namespace

Expected<std::unique_ptr<app::Vault>> open_vault(bool create, bool may_prompt) {
  const std::string dir = app::data_dir();
  auto holding = app::Vault::probe(dir);
  if (!holding) return Error{holding.error()};
  if (!*holding && !create)
    return make_error(
        "there is no vault in {} yet: nothing has been saved (`hearth run` saves chats)", dir);
  std::optional<std::string> pass = env("HEARTH_PASSPHRASE");
  if (!pass) {
    if (*holding == app::KeyHolding::kPassphrase) {
      if (!may_prompt)
        return make_error("the vault in {} is protected by a passphrase: set HEARTH_PASSPHRASE",
                          dir);
      auto p = prompt_tty("Vault passphrase: ");
      if (!p) return Error{p.error()};
      pass = std::move(*p);
    }
  }
  return app::Vault::open(dir, pass);
}

Expected<std::string> ask_new_passphrase() {
  if (auto p = env("HEARTH_NEW_PASSPHRASE")) return *p;
  auto a = prompt_tty("New vault passphrase (empty: keep the key in a file instead): ");
  if (!a) return Error{a.error()};
  if (a->empty()) return std::string();
  auto b = prompt_tty("Repeat it: ");
  if (!b) return Error{b.error()};
  if (*a != *b) return make_error("the two passphrases differ; nothing was changed");
  return *a;
}

Expected<std::unique_ptr<HistoryHook>> HistoryHook::open() {
  auto vault = open_vault(true);
  if (!vault) return Error{vault.error() + " (or run with --no-history to keep nothing)"};
  std::unique_ptr<HistoryHook> h(new HistoryHook());
  h->vault_ = std::move(*vault);
  return h;
}

std::string model_label(const std::string& model_arg) {
  auto path = app::resolve_model(model_arg);
  if (!path) return model_arg;
  app::ModelStore store(app::data_dir());
  if (auto sha = store.hash_of_blob_path(*path)) return "sha256:" + *sha;
  return "file:" + std::filesystem::path(*path).filename().string();
}

void HistoryHook::model_loaded(const std::string& model_arg) {
  const std::string model = model_label(model_arg);
  if (Status s = vault_->audit("model_loaded", {{"model", model}}); !s)
    fmt::print(stderr, "hearth: warning: the audit log was not written: {}\n", s.error());
  recorder_ = std::make_unique<app::TurnRecorder>(*vault_, model);
}

void HistoryHook::audit_event(const std::string& event, const nlohmann::json& details) {
  if (Status s = vault_->audit(event, details); !s)
    fmt::print(stderr, "hearth: warning: the audit log was not written: {}\n", s.error());
}

void HistoryHook::store_turn(const app::ChatSession& chat) {
  const auto& m = chat.messages();
  if (!recorder_) return;
  if (m.size() < 2 || m.back().role != "assistant" || m[m.size() - 2].role != "user") return;
  const std::string system = m.front().role == "system" ? m.front().content : std::string();
  if (Status s = recorder_->record(system, m[m.size() - 2].content, m.back().content); !s)
    fmt::print(stderr, "hearth: warning: this turn was not saved to the history: {}\n", s.error());
}

}  // namespace hearth::cli
