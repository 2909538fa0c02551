// hearth perplexity: how well a model predicts a text file (lower is better).
#include <fmt/core.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "app/perplexity.h"
#include "cli/common.h"
#include "platform/utf8.h"

namespace hearth::cli {

void register_perplexity(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    std::string file;
    int64_t ctx = 512, stride = 0, max_windows = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model over a UTF-8 text file (llama-perplexity's method)");
  o->model.add(cmd);
  cmd->add_option("-f,--file", o->file, "Text file to score")->required();
  cmd->add_option("-c,--ctx", o->ctx, "Window length in tokens")->capture_default_str();
  cmd->add_option("--stride", o->stride, "Tokens between window starts (default: --ctx); each window scores its last min(stride, ctx/2) tokens");
  cmd->add_option("--max-windows", o->max_windows, "Score at most this many windows (0: all)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: physical cores)");
  cmd->callback([o, &exit_code] {
    if (o->threads < 0 || o->threads > 1024) { exit_code = fail(fmt::format("--threads {} is out of range", o->threads)); return; }
    std::ifstream in(o->file, std::ios::binary);
    if (!in) { exit_code = fail(fmt::format("{}: cannot open", o->file)); return; }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (!platform::utf8::is_valid(text)) { exit_code = fail(fmt::format("{}: not valid UTF-8 text", o->file)); return; }
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    app::PerplexityOptions opt;
    opt.n_ctx = o->ctx;
    opt.stride = o->stride;
    opt.max_windows = o->max_windows;
    opt.n_threads = o->threads;
    const bool tty = isatty(STDERR_FILENO);
    opt.on_window = [tty](int64_t w, int64_t n, double ppl) {
      fmt::print(stderr, "{}window {}/{}: perplexity so far {:.4f}{}", tty ? "\r" : "", w + 1, n, ppl, tty ? "" : "\n");
    };
    auto r = app::perplexity(**model, text, opt);
    if (tty) fmt::print(stderr, "\n");
    if (!r) { exit_code = fail(r.error()); return; }
    fmt::print("perplexity {:.4f} ± {:.4f} over {} tokens ({} windows, --ctx {}, --stride {}, {} text tokens)\n",
               r->ppl, r->ppl_stderr, r->n_scored, r->n_windows, o->ctx, o->stride ? o->stride : o->ctx,
               r->n_text_tokens);
  });
}

}  // namespace hearth::cli
