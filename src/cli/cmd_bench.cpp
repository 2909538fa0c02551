// hearth bench: prefill and decode speed of a model (tokens/s, mean ± stddev over
// repetitions), or with --memory the machine's read bandwidth. Results on stdout (a table,
// or JSON with --json); progress on stderr.
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "app/bench.h"
#include "cli/common.h"

namespace hearth::cli {

void register_bench(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    app::BenchParams bench;
    int threads = 0;
    bool json = false, memory = false, quiet = false;
    int64_t memory_mib = 512;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill/decode speed (tokens/s) or memory bandwidth");
  o->model.add(cmd);
  cmd->add_option("-p,--prompt-tokens", o->bench.n_prompt, "Prefill test: tokens in one batch; 0 = skip")
      ->capture_default_str();
  cmd->add_option("-n,--gen-tokens", o->bench.n_gen, "Decode test: tokens generated one at a time; 0 = skip")
      ->capture_default_str();
  cmd->add_option("-d,--depth", o->bench.depth,
                  "Tokens already in the cache when each test starts (evaluated untimed first; "
                  "decode at a long context); --parallel 1 only")
      ->capture_default_str();
  cmd->add_option("--parallel", o->bench.n_parallel,
                  "Decode test: sequences decoded together in one batch (as `serve --parallel`); "
                  "reports their summed tokens/s")
      ->capture_default_str();
  cmd->add_flag("--roofline", o->bench.roofline,
               "After the decode test, decode -n tokens -r times more with the read bandwidth "
               "measured just before and after each token; reports the share of it the weights' "
               "reads reach (median, min, max)");
  cmd->add_option("-r,--reps", o->bench.reps, "Repetitions of each test")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: physical cores)");
  cmd->add_flag("--json", o->json, "Print the results as JSON");
  cmd->add_flag("--memory", o->memory, "Measure read bandwidth (GB/s) instead of a model");
  cmd->add_option("--memory-mib", o->memory_mib, "Buffer size for --memory, MiB")->capture_default_str();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  cmd->callback([o, &exit_code] {
    if (o->threads < 0 || o->threads > 1024) {
      exit_code = fail(fmt::format("--threads {} is out of range: use 1 to 1024", o->threads));
      return;
    }
    auto progress = [o](const std::string& s) {
      if (!o->quiet) fmt::print(stderr, "{}\n", s);
    };
    if (o->memory) {
      if (o->memory_mib < 64 || o->memory_mib > (int64_t{1} << 20)) {
        exit_code = fail(fmt::format("--memory-mib {} is out of range (64 to 1048576)", o->memory_mib));
        return;
      }
      progress(fmt::format("reading {} MiB, 5 passes ...", o->memory_mib));
      auto r = app::measure_read_bandwidth(o->threads, o->memory_mib << 20, 5);
      if (!r) { exit_code = fail(r.error()); return; }
      if (o->json) {
        nlohmann::json j = {{"test", "memory_read"}, {"threads", r->n_threads}, {"bytes", r->bytes},
                            {"gb_per_s", r->gb_per_s}, {"best_gb_per_s", r->best}, {"mean_gb_per_s", r->mean}};
        fmt::print("{}\n", j.dump());
      } else {
        fmt::print("memory read bandwidth: {:.1f} GB/s best, {:.1f} GB/s mean ({} threads, {} MiB buffer)\n",
                   r->best, r->mean, r->n_threads, r->bytes >> 20);
      }
      return;
    }
    auto model = load_model(o->model.model);
    if (!model) { exit_code = fail(model.error()); return; }
    o->bench.n_threads = o->threads;
    auto r = app::run_bench(**model, o->bench, progress);
    if (!r) { exit_code = fail(r.error()); return; }
    const std::string name = (*model)->gguf().name();
    if (o->json) {
      nlohmann::json tests = nlohmann::json::array();
      for (const app::BenchStat& s : r->tests)
        tests.push_back({{"test", s.name}, {"n_tokens", s.n_tokens}, {"tokens_per_s", s.tokens_per_s},
                         {"mean", s.mean}, {"stddev", s.stddev}});
      nlohmann::json j = {{"model", name}, {"threads", r->n_threads}, {"isa", r->isa}, {"tests", tests}};
      if (r->has_roofline) {
        const app::RooflineStat& rl = r->roofline;
        j["roofline"] = {{"weight_bytes_per_token", rl.weight_bytes}, {"shares", rl.shares},
                         {"bandwidth_gb_per_s", rl.bandwidth}, {"median_share", rl.median_share},
                         {"min_share", rl.min_share}, {"max_share", rl.max_share},
                         {"median_bandwidth_gb_per_s", rl.median_bandwidth},
                         {"median_weight_gb_per_s", rl.median_weight_gb_per_s}};
      }
      fmt::print("{}\n", j.dump());
      return;
    }
    fmt::print("| model | threads | isa | test | t/s |\n|---|---|---|---|---|\n");
    for (const app::BenchStat& s : r->tests)
      fmt::print("| {} | {} | {} | {} | {:.2f} ± {:.2f} |\n", name, r->n_threads, r->isa, s.name, s.mean,
                 s.stddev);
    if (r->has_roofline) {
      const app::RooflineStat& rl = r->roofline;
      fmt::print("\nroofline: {:.0f}% median (min {:.0f}%, max {:.0f}%, {} tokens): weights {:.1f} MB per "
                 "token read at {:.1f} GB/s, bandwidth around each token {:.1f} GB/s (medians)\n",
                 100 * rl.median_share, 100 * rl.min_share, 100 * rl.max_share, rl.shares.size(),
                 static_cast<double>(rl.weight_bytes) / 1e6, rl.median_weight_gb_per_s, rl.median_bandwidth);
    }
  });
}

}  // namespace hearth::cli
