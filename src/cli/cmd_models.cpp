// hearth import | list | rm | verify | rollback: the verified model store (app/model_store.h).
#include <fmt/core.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>

#include "app/model_store.h"
#include "app/paths.h"
#include "app/signing.h"
#include "cli/common.h"
#include "cli/progress.h"

namespace hearth::cli {
namespace {

std::string human_size(uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", bytes / double(1ull << 30));
  return fmt::format("{:.0f} MiB", bytes / double(1ull << 20));
}

// Cheap state for the table: no hashing, only what the manifest and a stat say.
std::string state_of(const app::ModelStore& store, const app::ModelVersion& v) {
  if (v.changed) return "NO: hash mismatch";
  struct stat st {};
  if (::lstat(store.blob_path(v.sha256).c_str(), &st) != 0) return "NO: blob missing";
  const int64_t mt = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (static_cast<uint64_t>(st.st_size) != v.size || mt != v.mtime_ns)
    return "re-check needed (file touched)";
  return "yes, " + utc_date(v.verified_at);
}

// "trusted", or with `verbose` "trusted, by ed25519:... (label)", "INVALID: why", ...
std::string signature_text(const Expected<app::SignatureCheck>& c, bool verbose) {
  if (!c) return "ERROR: " + c.error();
  std::string out = app::state_name(c->state);
  if (!verbose) return out;
  if (!c->detail.empty()) return out + ": " + c->detail;
  if (!c->signer.empty()) return out + ", by " + c->signer;
  return out;
}

void print_report(const app::VerifyReport& r, const std::string& signature) {
  if (r.ok)
    fmt::print("{}: ok (version {}, sha256 {}); signature: {}\n", r.name, r.version.version,
               r.version.sha256, signature);
  else
    fmt::print(
        "{}: CHANGED (version {}, expected sha256 {}; {}); it will not load until it matches "
        "again\n",
        r.name, r.version.version, r.version.sha256, r.detail);
}

}  // namespace

void register_models(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string file, name;
  };
  auto o = std::make_shared<Opts>();

  CLI::App* imp = app.add_subcommand(
      "import", "Add a .gguf model to the store (checked, hashed, kept by its SHA-256)");
  imp->add_option("file", o->file, "The .gguf file")->required();
  imp->add_option("--name", o->name, "Name to use (default: the file name without .gguf)");
  imp->callback([o, &exit_code] {
    std::string name = o->name;
    if (name.empty()) name = std::filesystem::path(o->file).stem().string();
    app::ModelStore store(app::data_dir());
    auto v = store.import(o->file, name, progress_bar("hashing " + name));
    finish_progress();
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    fmt::print("imported {} version {}: {} {}, {}, sha256 {}\n", name, v->version, v->architecture,
               v->quantization, human_size(v->size), v->sha256);
  });

  CLI::App* ls = app.add_subcommand("list", "List the models in the store");
  ls->callback([&exit_code] {
    app::ModelStore store(app::data_dir());
    auto all = store.list();
    if (!all) {
      exit_code = fail(all.error());
      return;
    }
    if (all->empty()) {
      fmt::print("no models in the store ({}); add one with `hearth import FILE.gguf`\n",
                 store.root());
      return;
    }
    auto trusted = app::load_trusted_keys(store.root());
    if (!trusted) {
      exit_code = fail(trusted.error());
      return;
    }
    fmt::print("{:<24} {:>7} {:>10} {:<8} {:<10} {:<10} {}\n", "NAME", "VERSION", "SIZE", "QUANT",
               "ARCH", "SIGNED", "VERIFIED");
    for (const auto& m : *all) {
      const auto& v = m.current();
      fmt::print("{:<24} {:>7} {:>10} {:<8} {:<10} {:<10} {}\n", m.name,
                 m.versions.size() > 1 ? fmt::format("{} ({})", v.version, m.versions.size())
                                       : std::to_string(v.version),
                 human_size(v.size), v.quantization, v.architecture,
                 signature_text(app::check_signature(store, m, *trusted), false),
                 state_of(store, v));
    }
  });

  CLI::App* rm = app.add_subcommand("rm", "Remove a model (every version) from the store");
  rm->add_option("name", o->name, "Model name")->required();
  rm->callback([o, &exit_code] {
    app::ModelStore store(app::data_dir());
    if (Status s = store.remove(o->name); !s) {
      exit_code = fail(s.error());
      return;
    }
    fmt::print("removed {}\n", o->name);
  });

  CLI::App* ver =
      app.add_subcommand("verify", "Re-hash models in the store and report any that changed");
  ver->add_option("name", o->name, "Model name (default: every model)");
  ver->callback([o, &exit_code] {
    app::ModelStore store(app::data_dir());
    std::vector<std::string> names;
    if (!o->name.empty()) {
      names.push_back(o->name);
    } else {
      auto all = store.list();
      if (!all) {
        exit_code = fail(all.error());
        return;
      }
      for (const auto& m : *all) names.push_back(m.name);
      if (names.empty()) fmt::print("no models in the store ({})\n", store.root());
    }
    auto trusted = app::load_trusted_keys(store.root());
    if (!trusted) {
      exit_code = fail(trusted.error());
      return;
    }
    bool all_ok = true;
    for (const auto& n : names) {
      auto r = store.verify(n, progress_bar("hashing " + n));
      finish_progress();
      auto m = r ? store.get(n) : Expected<app::ModelManifest>(Error{r.error()});
      if (!m) {
        exit_code = fail(m.error());
        return;
      }
      auto sig = app::check_signature(store, *m, *trusted);
      print_report(*r, signature_text(sig, true));
      all_ok = all_ok && r->ok && sig && sig->state != app::SignatureState::kInvalid;
    }
    if (!all_ok) exit_code = 2;
  });

  CLI::App* rb = app.add_subcommand("rollback", "Return a model to its previous imported version");
  rb->add_option("name", o->name, "Model name")->required();
  rb->callback([o, &exit_code] {
    app::ModelStore store(app::data_dir());
    auto v = store.rollback(o->name);
    if (!v) {
      exit_code = fail(v.error());
      return;
    }
    fmt::print("{} is back at version {} (sha256 {})\n", o->name, v->version, v->sha256);
  });
}

}  // namespace hearth::cli
