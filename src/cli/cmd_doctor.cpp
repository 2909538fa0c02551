// hearth doctor: one screen on where the user's data lives and how it is protected.
#include <fmt/core.h>
#include <sodium.h>
#include <sys/stat.h>

#include "app/config.h"
#include "app/model_paths.h"
#include "app/model_store.h"
#include "app/paths.h"
#include "app/signing.h"
#include "app/server.h"
#include "app/vault.h"
#include "cli/common.h"
#include "platform/sandbox.h"
#include "platform/seccomp.h"

namespace hearth::cli {
namespace {

std::string mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return fmt::format("mode {:04o}", st.st_mode & 07777);
}

void row(const std::string& label, const std::string& text) {
  fmt::print("  {:<14} {}\n", label, text);
}

}  // namespace

void register_doctor(CLI::App& app, int& exit_code) {
  auto no_hash = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "doctor", "Show where your data lives, how it is protected, and check models");
  cmd->add_flag("--no-hash", *no_hash, "Do not re-hash the models in the store (faster)");
  cmd->callback([no_hash, &exit_code] {
    const std::string data = app::data_dir();
    bool problems = false;
    fmt::print("Hearth doctor\n\nData\n");
    row("data dir", fmt::format("{} ({})", data, mode_of(data)));
    const auto& cfg = app::load_config();
    if (!cfg) {
      row("config", "ERROR: " + cfg.error());
      problems = true;
    } else {
      row("config", cfg->path.empty()
                        ? fmt::format("{} (not present: every default)", app::config_path())
                        : fmt::format("{} (read)", cfg->path));
    }

    fmt::print("\nHistory vault\n");
    auto info = app::Vault::inspect(data);
    if (!info) {
      row("vault", "ERROR: " + info.error());
      problems = true;
    } else if (!info->exists) {
      row("vault", "none yet (made on the first `hearth run` without --no-history)");
    } else {
      row("vault", fmt::format("{}/vault.db: {} conversations, {} messages", data,
                               info->conversations, info->messages));
      row("encryption",
          "every message, title and system prompt: XChaCha20-Poly1305, per-record nonce, record id "
          "bound");
      if (info->holding == app::KeyHolding::kPassphrase) {
        const bool weak = info->opslimit < crypto_pwhash_OPSLIMIT_INTERACTIVE ||
                          info->memlimit < crypto_pwhash_MEMLIMIT_INTERACTIVE;
        row("key",
            fmt::format("wrapped by your passphrase (Argon2id, ops {}, {} KiB){}; no key on disk",
                        info->opslimit, info->memlimit >> 10,
                        weak ? " — WEAK test-only limits: run `hearth vault passwd`" : ""));
        problems = problems || weak;
      } else {
        const bool loose = info->key_file_exists && (info->key_file_mode & 077);
        row("key",
            fmt::format(
                "in a key file {} ({}){}; anyone who can read it can read your history. "
                "`hearth vault passwd` sets a passphrase instead",
                info->key_file,
                info->key_file_exists ? fmt::format("mode {:04o}", info->key_file_mode) : "MISSING",
                loose ? " — TOO OPEN, chmod 600" : ""));
        problems = problems || loose || !info->key_file_exists;
      }
      row("erasure", "`hearth history forget ID|--all`: secure_delete, WAL checkpoint, VACUUM");
      row("audit log",
          fmt::format("{}/audit.log ({}); `hearth audit verify` checks its chain and MACs", data,
                      mode_of(data + "/audit.log")));
    }

    fmt::print("\nModels\n");
    app::ModelStore store(data);
    auto all = store.list();
    if (!all) {
      row("store", "ERROR: " + all.error());
      problems = true;
    } else if (all->empty()) {
      row("store",
          fmt::format("{}: empty (`hearth import FILE.gguf` adds a model with its hash)", data));
    } else {
      for (const auto& m : *all) {
        if (*no_hash) {
          row(m.name,
              fmt::format("{} (not re-hashed)", m.current().changed ? "CHANGED" : "recorded"));
          continue;
        }
        auto r = store.verify(m.name);
        if (!r) {
          row(m.name, "ERROR: " + r.error());
          problems = true;
          continue;
        }
        row(m.name, r->ok ? fmt::format("matches sha256 {}…", r->version.sha256.substr(0, 16))
                          : "DOES NOT MATCH its recorded hash; it will not load");
        problems = problems || !r->ok;
      }
    }
    auto trusted = app::load_trusted_keys(data);
    if (!trusted) {
      row("signatures", "ERROR: " + trusted.error());
      problems = true;
    } else {
      row("signatures",
          fmt::format("{}; {} trusted key(s) (`hearth trust list`); signing key {}",
                      cfg && cfg->require_signed
                          ? "REQUIRED (require_signed = true): only models signed by a trusted "
                            "key load"
                          : "not required (require_signed = false)",
                      trusted->size(),
                      app::signing_public_key(data) ? "present" : "none (`hearth keygen`)"));
      for (const auto& m : all ? *all : std::vector<app::ModelManifest>{}) {
        auto c = app::check_signature(store, m, *trusted);
        row("  " + m.name, c ? fmt::format("signature: {}", app::state_name(c->state))
                             : "signature: ERROR: " + c.error());
        problems = problems || !c || c->state == app::SignatureState::kInvalid;
      }
    }
    const auto loose = app::list_models();
    row("model dir", fmt::format("{}: {} .gguf file(s) used by name without a recorded hash",
                                 app::model_dir(), loose.size()));

    fmt::print("\nNetwork and process\n");
    row("telemetry", "none: Hearth has no telemetry, update check or crash reporting code");
    row("outbound", "only `hearth pull URL` (HTTPS, certificate verified), when you run it");
    const std::string listen = cfg && cfg->serve.listen ? *cfg->serve.listen : "127.0.0.1";
    row("serve",
        fmt::format("binds {}:{}{}; API key required", listen,
                    cfg && cfg->serve.port ? *cfg->serve.port : app::kDefaultServerPort,
                    listen == "127.0.0.1" ? " (loopback only) unless --listen is given"
                                          : " (from the config; other machines can connect)"));

    fmt::print("\nSandbox (`hearth run` and `hearth serve`, once the model is loaded)\n");
    const platform::SandboxState sb = platform::sandbox_support();
    if (sb.abi == 0)
      row("landlock", "NOT AVAILABLE in this kernel: files and TCP are not restricted");
    else
      row("landlock",
          fmt::format("ABI {}: files limited to the model (read-only) and the data dir "
                      "(read-write){}{}",
                      sb.abi,
                      sb.tcp_restricted ? "; network rules enforced: TCP connect/bind refused"
                                        : "; network rules NOT enforced (needs ABI 4)",
                      sb.scoped ? "; abstract unix sockets and signals scoped" : ""));
    row("seccomp", sb.seccomp ? "available: " + platform::seccomp_policy_summary()
                              : "NOT AVAILABLE in this kernel: socket creation and execve are "
                                "not refused");
    const std::string missing = sb.missing();
    row("state", missing.empty()
                     ? "complete"
                     : "INCOMPLETE: " + missing +
                           " (--require-sandbox or require_sandbox = true refuses to run)");
    row("not confined", "other commands; `hearth pull` is the one that connects");
    fmt::print("\n{}\n",
               problems ? "Problems found: see the lines marked above." : "No problems found.");
    if (problems) exit_code = 2;
  });
}

}  // namespace hearth::cli
