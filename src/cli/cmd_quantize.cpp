// hearth quantize: rewrite a model's weights in another type (Q4_K_M, Q8_0, ...).
#include <fmt/core.h>

#include "app/quantize.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "platform/thread_pool.h"

namespace hearth::cli {

void register_quantize(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string in, out, type;
    int threads = 0;
    bool overwrite = false;
  };
  auto o = std::make_shared<Opts>();
  std::string types;
  for (const std::string& t : app::quantize_type_names()) types += (types.empty() ? "" : ", ") + t;
  CLI::App* cmd = app.add_subcommand("quantize", "Write a copy of a GGUF model with its weights in another type");
  cmd->add_option("input", o->in, "Input .gguf (any type Hearth reads)")->required();
  cmd->add_option("output", o->out, "Output .gguf (never the input)")->required();
  cmd->add_option("type", o->type, "Target type: " + types)->required();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: physical cores)");
  cmd->add_flag("--overwrite", o->overwrite, "Replace OUTPUT if it exists");
  cmd->callback([o, &exit_code] {
    if (o->threads < 0 || o->threads > 1024) {
      exit_code = fail(fmt::format("--threads {} is out of range (1 to 1024)", o->threads));
      return;
    }
    app::QuantizeOptions opt;
    opt.type = o->type;
    for (char& c : opt.type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    opt.n_threads = o->threads ? o->threads : platform::physical_core_count();
    opt.overwrite = o->overwrite;
    opt.progress = progress_bar("quantizing");
    auto rep = app::quantize_model(o->in, o->out, opt);
    finish_progress();
    if (!rep) { exit_code = fail(rep.error()); return; }
    fmt::print("{} -> {} ({}): {} tensors requantized, {} kept; {:.1f} MB -> {:.1f} MB\n", o->in, o->out, opt.type,
               rep->n_quantized, rep->n_kept, rep->in_bytes / 1e6, rep->out_bytes / 1e6);
  });
}

}  // namespace hearth::cli
