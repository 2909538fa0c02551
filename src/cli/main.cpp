// hearth: a private, local runtime for language models. Nothing leaves this machine.
#include <CLI/CLI.hpp>

#include "cli/common.h"

int main(int argc, char** argv) {
  CLI::App app{"hearth: run language models privately on this machine. Nothing you type leaves it.", "hearth"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hearth 0.1.0");
  app.footer("Models live in $HEARTH_MODELS (default ~/.local/share/hearth/models).\n"
             "Settings: $HEARTH_CONFIG (default ~/.config/hearth/config.toml; see README.md).\n"
             "Run `hearth COMMAND --help` for a command's flags.");
  int exit_code = 0;
  hearth::cli::register_run(app, exit_code);
  hearth::cli::register_generate(app, exit_code);
  hearth::cli::register_tokenize(app, exit_code);
  hearth::cli::register_info(app, exit_code);
  hearth::cli::register_eval(app, exit_code);
  hearth::cli::register_serve(app, exit_code);
  hearth::cli::register_key(app, exit_code);
  hearth::cli::register_models(app, exit_code);
  hearth::cli::register_sign(app, exit_code);
  hearth::cli::register_pull(app, exit_code);
  hearth::cli::register_history(app, exit_code);
  hearth::cli::register_doctor(app, exit_code);
  hearth::cli::register_bench(app, exit_code);
  hearth::cli::register_quantize(app, exit_code);
  hearth::cli::register_perplexity(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
