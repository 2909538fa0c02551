// hearth import | list | rm | verify | rollback: the verified model store (app/model_store.h).
#include <fmt/core.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>

#include "app/model_store.h"
#include "app/paths.h"
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

void print_report(const app::VerifyReport& r) {
  if (r.ok)
    fmt::print("{}: ok (version {}, sha256 {})\n", r.name, r.version.version, r.version.sha256);
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
    fmt::print("{:<24} {:>7} {:>10} {:<8} {:<10} {}\n", "NAME", "VERSION", "SIZE", "QUANT", "ARCH",
               "VERIFIED");
    for (const auto& m : *all) {
      const auto& v = m.current();
      fmt::print("{:<24} {:>7} {:>10} {:<8} {:<10} {}\n", m.name,
                 m.versions.size() > 1 ? fmt::format("{} ({})", v.version, m.versions.size())
                                       : std::to_string(v.version),
                 human_size(v.size), v.quantization, v.architecture, state_of(store, v));
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
    bool all_ok = true;
    for (const auto& n : names) {
      auto r = store.verify(n, progress_bar("hashing " + n));
      finish_progress();
      if (!r) {
        exit_code = fail(r.error());
        return;
      }
      print_report(*r);
      all_ok = all_ok && r->ok;
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
