// hearth info: what a model file is and what running it will take.
#include <fmt/core.h>

#include <map>

#include "cli/common.h"

namespace hearth::cli {

namespace {
std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.1f} M", n / 1e6);
  return fmt::format("{:.0f}", n);
}
}  // namespace

void register_info(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    ContextFlags context;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model: architecture, size, tokenizer, memory needed");
  o->model.add(cmd);
  o->context.add(cmd);
  cmd->callback([o, &exit_code] {
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    const engine::Model& m = **model;
    const engine::HParams& hp = m.hparams();
    auto params = o->context.params(m);
    if (!params) { exit_code = fail(params.error()); return; }
    const format::GgufFile& g = m.gguf();
    std::map<std::string, std::pair<int, int64_t>> mix;  // type -> (tensors, bytes)
    for (const auto& t : g.tensors()) {
      auto& e = mix[std::string(format::type_name(t.type))];
      e.first++;
      e.second += static_cast<int64_t>(t.n_bytes);
    }
    std::string mix_s;
    for (const auto& [name, e] : mix)
      mix_s += fmt::format("{}{} x{} ({})", mix_s.empty() ? "" : ", ", name, e.first, human_bytes(e.second));
    const int64_t kv = m.kv_bytes(params->n_ctx);
    fmt::print("file            {}\n", g.name());
    fmt::print("name            {}\n", g.get_string("general.name").value_or("(none)"));
    fmt::print("architecture    {}\n", hp.arch);
    fmt::print("parameters      {}\n", human_count(static_cast<double>(hp.n_params)));
    fmt::print("layers          {} (embedding {}, feed-forward {}, heads {} / kv heads {}, head dim {})\n",
               hp.n_layer, hp.n_embd, hp.n_ff, hp.n_head, hp.n_head_kv, hp.head_dim);
    fmt::print("context length  {} (trained)\n", hp.n_ctx_train);
    fmt::print("rope            base {}, {} of {} dims\n", hp.rope_base, hp.rot_dim, hp.head_dim);
    fmt::print("tokenizer       {} (pre-tokenizer '{}'), {} tokens\n", m.tokenizer().model(), m.tokenizer().pre(),
               m.tokenizer().n_vocab());
    fmt::print("chat template   {}\n", m.chat_template() ? "yes (from the file)" : "no (ChatML is used)");
    fmt::print("tensor types    {}\n", mix_s);
    fmt::print("file size       {}\n", human_bytes(static_cast<double>(g.file_size())));
    fmt::print("memory to run   {} (weights mapped {} + KV cache {} for --ctx {})\n",
               human_bytes(static_cast<double>(g.file_size() + kv)), human_bytes(static_cast<double>(g.file_size())),
               human_bytes(static_cast<double>(kv)), params->n_ctx);
  });
}

}  // namespace hearth::cli
