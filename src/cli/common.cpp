#include "cli/common.h"

#include <fmt/core.h>

#include <ctime>
#include <random>

#include "app/config.h"
#include "app/model_paths.h"
#include "platform/clock.h"

namespace hearth::cli {

void ModelFlags::add(CLI::App* cmd) {
  cmd->add_option("model", model,
                  "Model: a .gguf path, or a name in the model directory (default: " +
                      std::string(app::kDefaultModelFile) + ")");
}

void ContextFlags::add(CLI::App* cmd) {
  cmd->add_option("-t,--threads", threads, "Threads for the kernels (default: physical cores)");
  cmd->add_option("-c,--ctx", ctx, "Context size in tokens (default: 4096 or the model's, if smaller)");
}

Expected<engine::ContextParams> ContextFlags::params(const engine::Model& model) const {
  engine::ContextParams p;
  const int64_t trained = model.hparams().n_ctx_train;
  const auto& cfg = app::load_config();
  if (!cfg) return Error{cfg.error()};
  if (threads && (*threads < 1 || *threads > 1024))
    return make_error("--threads {} is out of range: use 1 to 1024 (default: the number of cores)", *threads);
  if (ctx && *ctx < 1) return make_error("--ctx {} is out of range: the context needs at least 1 token", *ctx);
  if (ctx && *ctx > trained)
    return make_error("--ctx {} is larger than this model's training context ({})", *ctx, trained);
  // Flags win over the config (whose values are range-checked when read); the config's ctx
  // is capped at what the model was trained on.
  p.n_threads = threads ? *threads : cfg->threads.value_or(0);
  p.n_ctx = ctx ? *ctx : std::min<int64_t>(cfg->ctx.value_or(4096), trained);
  return p;
}

void SamplingFlags::add(CLI::App* cmd, int64_t default_max_tokens) {
  gen.max_tokens = default_max_tokens;
  engine::SamplerParams& s = gen.sampling;
  cmd->add_option("--temp", s.temp, "Temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "Keep the k most likely tokens; 0 = off")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "Nucleus sampling threshold; 1 = off")->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "Drop tokens below min-p x the top probability; 0 = off")->capture_default_str();
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "Penalty for repeating recent tokens; 1 = off")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "How many recent tokens the penalties look at")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty, "Subtract count x this from a token's logit")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty, "Subtract this from the logit of any seen token")
      ->capture_default_str();
  cmd->add_option("--seed", seed, "Random seed (default: random); same seed and input give the same output");
  cmd->add_option("-n,--max-tokens", gen.max_tokens, "Most tokens to generate; -1 = until the context is full")
      ->capture_default_str();
  cmd->add_option("--stop", gen.stop, "Stop when this text appears (repeat the flag for several)")
      ->allow_extra_args(false);
}

Status SamplingFlags::validate() {
  engine::SamplerParams& s = gen.sampling;
  if (!(s.temp >= 0 && s.temp <= 100)) return make_error("--temp {} is out of range (0 to 100)", s.temp);
  if (!(s.top_p > 0 && s.top_p <= 1)) return make_error("--top-p {} is out of range (0 < p <= 1)", s.top_p);
  if (!(s.min_p >= 0 && s.min_p <= 1)) return make_error("--min-p {} is out of range (0 to 1)", s.min_p);
  if (s.top_k < 0) return make_error("--top-k {} is negative", s.top_k);
  if (!(s.repeat_penalty > 0 && s.repeat_penalty <= 100))
    return make_error("--repeat-penalty {} is out of range (0 < x <= 100)", s.repeat_penalty);
  if (gen.max_tokens < -1) return make_error("--max-tokens {} is out of range (-1 or more)", gen.max_tokens);
  s.seed = seed ? *seed : std::random_device{}();
  return Status::ok();
}

Expected<std::unique_ptr<engine::Model>> load_model(const std::string& model) {
  auto path = app::resolve_model(model);
  if (!path) return Error{path.error()};
  return engine::Model::load(*path);
}

int fail(const std::string& message) {
  fmt::print(stderr, "hearth: error: {}\n", message);
  return 1;
}

Expected<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\n' || text[i] == '\t') {
      ++i;
      continue;
    }
    size_t j = i;
    int64_t v = 0;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9' && v <= INT32_MAX) v = v * 10 + (text[j++] - '0');
    if (j == i || v > INT32_MAX || (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\n'))
      return make_error("token ids must be non-negative integers separated by spaces or commas (at '{}')",
                        text.substr(i, 20));
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  return ids;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string utc_date(int64_t unix_seconds) {
  return platform::utc_text(unix_seconds, "%Y-%m-%d %H:%M");
}

}  // namespace hearth::cli
