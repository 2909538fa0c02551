// Flags shared by the subcommands, model loading, and error reporting for the CLI.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/model.h"

namespace hearth::cli {

struct ModelFlags {
  std::string model;  // path or name; empty = default model
  void add(CLI::App* cmd);
};

struct ContextFlags {
  std::optional<int> threads;   // not given: the config's `threads`, else physical cores
  std::optional<int64_t> ctx;   // not given: the config's `ctx`, else min(4096, trained)
  void add(CLI::App* cmd);
  // Validated context parameters for a loaded model, or an error naming the flag (or the
  // config file, app/config.h).
  Expected<engine::ContextParams> params(const engine::Model& model) const;
};

struct SamplingFlags {
  engine::GenerateParams gen;
  std::optional<uint64_t> seed;
  void add(CLI::App* cmd, int64_t default_max_tokens);
  Status validate();  // fills a random seed when none is given
};

// Loads the model named by flags (resolving names in the model directory).
Expected<std::unique_ptr<engine::Model>> load_model(const std::string& model);

// Prints "hearth: error: MESSAGE" to stderr and returns exit code 1.
int fail(const std::string& message);

// Parses "1 2 3" (spaces or commas) into token ids.
Expected<std::vector<int32_t>> parse_ids(const std::string& text);

// "93.8 MiB": bytes with a binary unit, for tables and summaries.
std::string human_bytes(double bytes);
// "2026-11-25 13:50" (UTC) from Unix seconds.
std::string utc_date(int64_t unix_seconds);

void register_run(CLI::App& app, int& exit_code);
void register_generate(CLI::App& app, int& exit_code);
void register_tokenize(CLI::App& app, int& exit_code);
void register_info(CLI::App& app, int& exit_code);
void register_eval(CLI::App& app, int& exit_code);
void register_serve(CLI::App& app, int& exit_code);
void register_key(CLI::App& app, int& exit_code);
void register_models(CLI::App& app, int& exit_code);  // import, list, rm, verify, rollback
void register_sign(CLI::App& app, int& exit_code);    // keygen, sign, trust
void register_pull(CLI::App& app, int& exit_code);
void register_history(CLI::App& app, int& exit_code);  // history, vault, audit
void register_doctor(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_quantize(CLI::App& app, int& exit_code);
void register_perplexity(CLI::App& app, int& exit_code);

}  // namespace hearth::cli
