// hearth tokenize: show how a model's tokenizer splits a text.
#include <fmt/core.h>

#include "cli/common.h"

namespace hearth::cli {

void register_tokenize(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    std::string prompt;
    bool ids_only = false, no_bos = false, no_special = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids and pieces of a text");
  o->model.add(cmd);
  cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize")->required();
  cmd->add_flag("--ids", o->ids_only, "Print only the ids, space-separated on one line");
  cmd->add_flag("--no-bos", o->no_bos, "Do not add the model's BOS/EOS tokens");
  cmd->add_flag("--no-special", o->no_special, "Treat special-token text like <|im_start|> as plain text");
  cmd->callback([o, &exit_code] {
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    const engine::Tokenizer& tok = (*model)->tokenizer();
    const std::vector<int32_t> ids = tok.encode(o->prompt, !o->no_bos, !o->no_special);
    if (o->ids_only) {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
      fmt::print("{}\n", line);
      return;
    }
    for (int32_t id : ids) {
      const std::string piece = tok.token_to_piece(id, true);
      std::string shown;
      for (unsigned char c : piece) {
        if (c == '\n') shown += "\\n";
        else if (c == '\t') shown += "\\t";
        else if (c == '\'') shown += "\\'";
        else if (c < 0x20 || c == 0x7f) shown += fmt::format("\\x{:02x}", c);
        else shown += static_cast<char>(c);
      }
      fmt::print("{:>6} -> '{}'\n", id, shown);
    }
    fmt::print(stderr, "{} tokens\n", ids.size());
  });
}

}  // namespace hearth::cli
