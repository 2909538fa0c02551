// hearth eval: a developer tool that writes the logits of every position, for comparing
// Hearth with reference implementations (tests/python/test_forward.py).
#include <fmt/core.h>

#include <cstdio>

#include "cli/common.h"

namespace hearth::cli {

void register_eval(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    ContextFlags context;
    std::string ids, out;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("eval", "Developer tool: write the logits of token ids to a file");
  o->model.add(cmd);
  o->context.add(cmd);
  cmd->add_option("--ids", o->ids, "Token ids, space-separated")->required();
  cmd->add_option("--logits-out", o->out, "Output: raw little-endian float32 [n_tokens, n_vocab]")->required();
  cmd->callback([o, &exit_code] {
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    auto ids = parse_ids(o->ids);
    if (!ids) { exit_code = fail(ids.error()); return; }
    auto params = o->context.params(**model);
    if (!params) { exit_code = fail(params.error()); return; }
    auto ctx = engine::Context::create(**model, *params);
    if (!ctx) { exit_code = fail(ctx.error()); return; }
    if (Status s = (*ctx)->eval(*ids, true); !s) { exit_code = fail(s.error()); return; }
    FILE* f = std::fopen(o->out.c_str(), "wb");
    if (!f) { exit_code = fail(fmt::format("{}: cannot open for writing", o->out)); return; }
    const size_t n = ids->size() * static_cast<size_t>((*model)->hparams().n_vocab);
    const bool ok = std::fwrite((*ctx)->logits(), sizeof(float), n, f) == n;
    if (std::fclose(f) != 0 || !ok) { exit_code = fail(fmt::format("{}: write failed", o->out)); return; }
  });
}

}  // namespace hearth::cli
