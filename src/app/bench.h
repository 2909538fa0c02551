// Speed measurements that stay in the product: `hearth bench` (prefill and decode tokens/s
// of a model, like llama-bench's pp/tg tests) and a STREAM-like read-bandwidth probe, so
// results can be stated against the machine's memory roofline.
//
// Both run on the calling thread plus the context's (or a temporary) thread pool and
// allocate their buffers up front; the timed loops allocate nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "platform/status.h"

namespace hearth::app {

struct BenchParams {
  int64_t n_prompt = 512;  // pp test: one batch of this many tokens; 0 = skip
  int64_t n_gen = 128;     // tg test: this many single-token evals from position 0; 0 = skip
  int64_t depth = 0;       // both tests start after this many tokens already in the cache
                           // (evaluated untimed first), as llama-bench's -d; --parallel 1 only
  int n_parallel = 1;      // tg test: sequences decoded together, one token each per forward
                           // pass (what `serve --parallel` batches); tokens/s is their sum
  // tg test, --parallel 1: each token's time is set against the read bandwidth measured
  // just before and just after it (BenchResult::roofline). This VM's bandwidth moves by 40%
  // within seconds; per token, both sides of the ratio see the same machine.
  bool roofline = false;
  int reps = 3;
  int n_threads = 0;       // 0 = physical cores
  uint64_t seed = 1234;    // token ids are drawn at random (speed does not depend on them)
};

// One test's repetitions: tokens/s of each, and their mean and (sample) standard deviation.
struct BenchStat {
  std::string name;  // "pp512", "tg128", "tg128x8" (8 sequences together), "tg128@d1024"
  int64_t n_tokens = 0;
  std::vector<double> tokens_per_s;
  double mean = 0, stddev = 0;
};

// Decode against the memory roofline, token by token: share = weight bytes / token time /
// max(bandwidth probed before it, after it).
struct RooflineStat {
  int64_t weight_bytes = 0;            // per token (Model::matmul_weight_bytes)
  std::vector<double> shares;          // each token, 0..1 (above 1: the probe read less)
  std::vector<double> bandwidth;       // the larger probe around each token, GB/s
  double median_share = 0, min_share = 0, max_share = 0, median_bandwidth = 0;
  double median_weight_gb_per_s = 0;   // weight bytes / token time, median
};

struct BenchResult {
  int n_threads = 0;
  std::string isa;  // kernels' dispatched ISA
  std::vector<BenchStat> tests;
  bool has_roofline = false;
  RooflineStat roofline;
};

// Progress lines ("pp512 rep 2/3: 512.3 t/s") go to progress when it is set.
Expected<BenchResult> run_bench(const engine::Model& model, const BenchParams& p,
                                const std::function<void(const std::string&)>& progress = {});

struct BandwidthResult {
  int n_threads = 0;
  int64_t bytes = 0;          // buffer size
  std::vector<double> gb_per_s;  // each pass, 1 GB = 1e9 bytes
  double best = 0, mean = 0;
};

// Reads a buffer of `bytes` (much larger than the last-level cache) with n_threads threads
// (0 = physical cores), `passes` times, and reports the read bandwidth of each pass.
Expected<BandwidthResult> measure_read_bandwidth(int n_threads, int64_t bytes, int passes);

// Mean and sample standard deviation (0 for fewer than two values).
void mean_stddev(const std::vector<double>& v, double* mean, double* stddev);

}  // namespace hearth::app
