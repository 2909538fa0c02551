// hearth pull URL --sha256 HEX: download a model over HTTPS into the store
// (app/pull.h).
#include <fmt/core.h>

#include "app/model_store.h"
#include "app/paths.h"
#include "app/pull.h"
#include "cli/common.h"
#include "cli/interrupt.h"
#include "cli/progress.h"

namespace hearth::cli {

void register_pull(CLI::App &app, int &exit_code) {
  auto o = std::make_shared<app::PullOptions>();
  CLI::App *cmd =
      app.add_subcommand("pull", "Download a model over HTTPS into the store "
                                 "(the only command that uses the network)");
  cmd->add_option("url", o->url, "https:// URL of a .gguf file")->required();
  cmd->add_option("--sha256", o->sha256,
                  "The file's expected SHA-256 (64 hex digits)")
      ->required();
  cmd->add_option("--name", o->name,
                  "Store name (default: the URL's file name without .gguf)");
  cmd->add_option("--cacert", o->cacert,
                  "PEM file of CA certificates to trust instead of the "
                  "system's (a private CA)");
  cmd->footer("HTTPS only, certificates verified. The file enters the store "
              "only when its SHA-256\n"
              "matches --sha256; otherwise it is deleted. Ctrl-C or a dropped "
              "connection keeps the\n"
              "partial file (DATA/blobs/.pull-<sha256>.part): run the same "
              "command again to resume.");
  cmd->callback([o, &exit_code] {
    app::ModelStore store(app::data_dir());
    app::PullOptions opts = *o;
    const std::string label =
        o->name.empty() ? o->url.substr(o->url.rfind('/') + 1) : o->name;
    opts.progress = progress_bar("downloading " + label);
    opts.hash_progress = progress_bar("verifying " + label);
    InterruptGuard guard;
    opts.cancel = &guard.flag();
    auto r = app::pull_model(store, opts);
    finish_progress();
    if (!r) {
      exit_code = fail(r.error());
      return;
    }
    if (r->resumed_from > 0 && !r->restarted)
      fmt::print(stderr, "hearth: resumed a partial download at {}\n",
                 human_bytes(r->resumed_from));
    if (r->restarted)
      fmt::print(
          stderr,
          "hearth: the server could not continue the partial download; it was "
          "downloaded again from the start\n");
    fmt::print(
        "pulled {} version {}: {} {}, {}, sha256 {}\n", r->name,
        r->version.version, r->version.architecture, r->version.quantization,
        human_bytes(static_cast<double>(r->version.size)), r->version.sha256);
  });
}

} // namespace hearth::cli
