// hearth generate: continue raw text (no chat template).
#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>

#include "cli/common.h"
#include "cli/interrupt.h"
#include "platform/utf8.h"

namespace hearth::cli {

void register_generate(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    ContextFlags context;
    SamplingFlags sampling;
    std::string prompt, prompt_ids;
    bool output_ids = false, special = false, verbose = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("generate", "Continue a text as the raw model would, without a chat template");
  o->model.add(cmd);
  auto* p = cmd->add_option("-p,--prompt", o->prompt, "Text to continue");
  auto* pi = cmd->add_option("--prompt-ids", o->prompt_ids, "Token ids to continue, instead of -p");
  p->excludes(pi);
  cmd->add_flag("--output-ids", o->output_ids, "Print the generated token ids instead of text");
  cmd->add_flag("--special", o->special, "Parse special-token text like <|im_start|> in the prompt");
  cmd->add_flag("-v,--verbose", o->verbose, "Print timing to stderr");
  o->context.add(cmd);
  o->sampling.add(cmd, 256);
  cmd->callback([o, &exit_code] {
    if (Status s = o->sampling.validate(); !s) { exit_code = fail(s.error()); return; }
    if (o->prompt.empty() && o->prompt_ids.empty()) { exit_code = fail("give a prompt with -p TEXT or --prompt-ids IDS"); return; }
    if (!platform::utf8::is_valid(o->prompt)) { exit_code = fail("the prompt is not valid UTF-8"); return; }
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    const engine::Tokenizer& tok = (*model)->tokenizer();
    std::vector<int32_t> prompt;
    if (!o->prompt_ids.empty()) {
      auto ids = parse_ids(o->prompt_ids);
      if (!ids) { exit_code = fail(ids.error()); return; }
      prompt = std::move(*ids);
    } else {
      prompt = tok.encode(o->prompt, true, o->special);
    }
    auto params = o->context.params(**model);
    if (!params) { exit_code = fail(params.error()); return; }
    auto ctx = engine::Context::create(**model, *params);
    if (!ctx) { exit_code = fail(ctx.error()); return; }
    InterruptGuard guard;
    auto res = engine::generate(**ctx, prompt, o->sampling.gen,
                                [&](std::string_view text) {
                                  if (!o->output_ids) {
                                    std::fwrite(text.data(), 1, text.size(), stdout);
                                    std::fflush(stdout);
                                  }
                                  return true;
                                },
                                &guard.flag());
    if (!res) { exit_code = fail(res.error()); return; }
    if (o->output_ids) {
      std::string line;
      for (size_t i = 0; i < res->tokens.size(); ++i) line += (i ? " " : "") + std::to_string(res->tokens[i]);
      fmt::print("{}\n", line);
    } else {
      fmt::print("\n");
    }
    if (o->verbose) print_stats(*res);
    if (res->reason == engine::StopReason::kContextFull)
      fmt::print(stderr, "hearth: the context ({} tokens) is full; output stopped. Use a larger --ctx.\n", (*ctx)->n_ctx());
  });
}

}  // namespace hearth::cli
