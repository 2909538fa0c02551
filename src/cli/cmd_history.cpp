// hearth history (list, show, export, forget), hearth vault passwd, hearth audit (show, verify).
#include <fmt/core.h>

#include <ctime>

#include "app/paths.h"
#include "cli/common.h"
#include "cli/vault_access.h"
#include "platform/secure_file.h"

namespace hearth::cli {
namespace {

// One line of a title for the table: control characters become spaces.
std::string one_line(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return s;
}

std::string forget_note(const app::ForgetReport& r) {
  return r.wal_cleared ? std::string()
                       : " (another Hearth process has the vault open; its old pages leave the WAL "
                         "when it closes)";
}

}  // namespace

void register_history(CLI::App& app, int& exit_code) {
  struct Opts {
    int64_t id = 0;
    bool all = false;
    std::string format = "json", output;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* hist =
      app.add_subcommand("history", "Your saved conversations (encrypted in the vault)");
  hist->require_subcommand(1);

  hist->add_subcommand("list", "List saved conversations")->callback([&exit_code] {
    if (auto h = app::Vault::probe(app::data_dir()); h && !*h) {
      fmt::print("no saved conversations\n");
      return;
    }
    auto v = open_vault();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    auto all = (*v)->list();
    if (!all) {
      exit_code = fail(all.error());
      return;
    }
    if (all->empty()) {
      fmt::print("no saved conversations\n");
      return;
    }
    fmt::print("{:>5}  {:<16}  {:>4}  {}\n", "ID", "UPDATED (UTC)", "MSGS", "TITLE");
    for (const auto& c : *all)
      fmt::print("{:>5}  {:<16}  {:>4}  {}\n", c.id, utc_date(c.updated), c.n_messages,
                 one_line(c.title));
  });

  CLI::App* show = hist->add_subcommand("show", "Print one conversation");
  show->add_option("id", o->id, "Conversation id (from `hearth history list`)")->required();
  show->callback([o, &exit_code] {
    auto v = open_vault();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    auto c = (*v)->get(o->id);
    if (!c) {
      exit_code = fail(c.error());
      return;
    }
    fmt::print("conversation {} ({} UTC, model {})\n", c->id, utc_date(c->created), c->model);
    if (!c->system.empty()) fmt::print("[system] {}\n", c->system);
    for (const auto& m : c->messages) fmt::print("[{}] {}\n", m.role, m.text);
  });

  CLI::App* exp = hist->add_subcommand(
      "export", "Write all your conversations as JSON (format hearth-history-export-v1)");
  exp->add_option("--format", o->format, "Output format")
      ->check(CLI::IsMember({"json"}))
      ->capture_default_str();
  exp->add_option("-o,--output", o->output,
                  "Write to this file (atomically, mode 0600) instead of stdout");
  exp->callback([o, &exit_code] {
    auto v = open_vault();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    auto text = (*v)->export_json();
    if (!text) {
      exit_code = fail(text.error());
      return;
    }
    if (o->output.empty()) {
      fmt::print("{}", *text);
    } else if (Status s = platform::write_file_atomic(o->output, *text, 0600); !s) {
      exit_code = fail(s.error());
    }
  });

  CLI::App* fg = hist->add_subcommand(
      "forget", "Erase a conversation (or --all) so no trace stays in the vault files");
  fg->add_option("id", o->id, "Conversation id");
  fg->add_flag("--all", o->all, "Erase every conversation");
  fg->callback([o, &exit_code] {
    if (o->all == (o->id != 0)) {
      exit_code = fail("give a conversation id or --all (not both)");
      return;
    }
    auto v = open_vault();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    auto r = o->all ? (*v)->forget_all() : (*v)->forget(o->id);
    if (!r) {
      exit_code = fail(r.error());
      return;
    }
    fmt::print("forgot {} conversation(s), {} message(s){}\n", r->conversations, r->messages,
               forget_note(*r));
  });

  CLI::App* vault = app.add_subcommand("vault", "The encrypted vault that holds your history");
  vault->require_subcommand(1);
  vault
      ->add_subcommand("passwd",
                       "Set, change or remove the vault passphrase (re-wraps the key only)")
      ->callback([&exit_code] {
        auto v = open_vault(true);
        if (!v) {
          exit_code = fail(v.error());
          return;
        }
        auto p = ask_new_passphrase();
        if (!p) {
          exit_code = fail(p.error());
          return;
        }
        if (Status s = (*v)->change_key(*p); !s) {
          exit_code = fail(s.error());
          return;
        }
        fmt::print("{}\n", p->empty() ? "the vault key is now held in a file (vault.key, mode 0600)"
                                      : "the vault passphrase is set");
      });

  CLI::App* audit = app.add_subcommand(
      "audit", "The audit log of what happened to your data (never its content)");
  audit->require_subcommand(1);
  audit->add_subcommand("show", "Print the audit log")->callback([&exit_code] {
    auto v = open_vault();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    auto entries = (*v)->audit_log().entries();
    if (!entries) {
      exit_code = fail(entries.error());
      return;
    }
    for (const auto& e : *entries)
      fmt::print("{:>5}  {}  {:<24} {}\n", e.value("seq", 0), e.value("time", std::string()),
                 e.value("event", std::string()), e.contains("details") ? e["details"].dump() : "");
  });
  audit->add_subcommand("verify", "Check the audit log's chain and MACs")->callback([&exit_code] {
    auto v = open_vault();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    auto r = (*v)->verify_audit();
    if (!r) {
      exit_code = fail(r.error());
      return;
    }
    if (!r->ok) {
      fmt::print("audit log {}: TAMPERED: {}\n", (*v)->audit_log().path(), r->problem);
      exit_code = 2;
      return;
    }
    fmt::print("audit log {}: ok ({} entries, chain and MACs intact)\n", (*v)->audit_log().path(),
               r->entries);
  });
}

}  // namespace hearth::cli
