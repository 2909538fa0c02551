// hearth keygen | sign | trust add|list|rm: Ed25519 model signatures
// (app/signing.h).
#include <fmt/core.h>

#include "app/model_store.h"
#include "app/paths.h"
#include "app/signing.h"
#include "cli/common.h"

namespace hearth::cli {

void register_sign(CLI::App &app, int &exit_code) {
  struct Opts {
    bool force = false;
    std::string name, key, label;
  };
  auto o = std::make_shared<Opts>();

  CLI::App *kg =
      app.add_subcommand("keygen", "Make your Ed25519 signing key pair (secret "
                                   "key kept 0600 in the data directory)");
  kg->add_flag("--force", o->force, "Replace an existing signing key");
  kg->footer("Prints the public key as 'ed25519:' and 64 hex digits; give it "
             "to `hearth trust add`\n"
             "on every machine that should accept models you sign.");
  kg->callback([o, &exit_code] {
    auto pk = app::generate_signing_key(app::data_dir(), o->force);
    if (!pk) {
      exit_code = fail(pk.error());
      return;
    }
    fmt::print("{}\n", app::format_public_key(*pk));
    fmt::print(stderr,
               "hearth: secret key written to {} (mode 0600). Trust the public "
               "key above with "
               "`hearth trust add` to accept models it signs.\n",
               app::signing_key_path(app::data_dir()));
  });

  CLI::App *sg =
      app.add_subcommand("sign", "Sign a store model's current version (name, "
                                 "version, SHA-256, size) with your key");
  sg->add_option("name", o->name, "Model name in the store")->required();
  sg->callback([o, &exit_code] {
    app::ModelStore store(app::data_dir());
    auto pk = app::sign_model(store, o->name);
    if (!pk) {
      exit_code = fail(pk.error());
      return;
    }
    auto m = store.get(o->name);
    if (!m) {
      exit_code = fail(m.error());
      return;
    }
    fmt::print("signed {} version {} (sha256 {}) with {}\n", o->name,
               m->current().version, m->current().sha256,
               app::format_public_key(*pk));
  });

  CLI::App *tr = app.add_subcommand(
      "trust", "Manage the public keys whose model signatures you accept");
  tr->require_subcommand(1);
  CLI::App *add =
      tr->add_subcommand("add", "Trust a public key (ed25519:<64 hex>)");
  add->add_option("key", o->key, "The public key, as `hearth keygen` prints it")
      ->required();
  add->add_option("--name", o->label,
                  "A label for it (e.g. who it belongs to)");
  add->callback([o, &exit_code] {
    auto key = app::parse_public_key(o->key);
    if (!key) {
      exit_code = fail(key.error());
      return;
    }
    if (Status s = app::trust_key(app::data_dir(), *key, o->label); !s) {
      exit_code = fail(s.error());
      return;
    }
    fmt::print("trusted {}{}\n", app::format_public_key(*key),
               o->label.empty() ? "" : " (" + o->label + ")");
  });
  CLI::App *ls = tr->add_subcommand("list", "List the trusted public keys");
  ls->callback([&exit_code] {
    auto keys = app::load_trusted_keys(app::data_dir());
    if (!keys) {
      exit_code = fail(keys.error());
      return;
    }
    if (keys->empty())
      fmt::print("no trusted keys (add one with `hearth trust add KEY`)\n");
    for (const auto &k : *keys)
      fmt::print("{}  {}  added {}\n", app::format_public_key(k.key),
                 k.name.empty() ? "-" : k.name, utc_date(k.added_at));
  });
  CLI::App *rm = tr->add_subcommand(
      "rm", "Stop trusting a key (given as ed25519:... or by label)");
  rm->add_option("key", o->key, "The public key or its label")->required();
  rm->callback([o, &exit_code] {
    auto k = app::untrust_key(app::data_dir(), o->key);
    if (!k) {
      exit_code = fail(k.error());
      return;
    }
    fmt::print("no longer trusted: {}\n", app::format_public_key(k->key));
  });
}

} // namespace hearth::cli
