#include "app/bench.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <thread>

#include "kernels/intrinsics.h"
#include "kernels/type_kernels.h"
#include "platform/clock.h"
#include "platform/cpu_features.h"
#include "platform/mapped_file.h"
#include "platform/thread_pool.h"

namespace hearth::app {
namespace {

using Clock = platform::SteadyClock;
using platform::seconds_since;

BenchStat make_stat(std::string name, int64_t n_tokens) {
  BenchStat s;
  s.name = std::move(name);
  s.n_tokens = n_tokens;
  return s;
}

// Sum of n 64-bit words; integer adds so the compiler vectorizes the loop and the loads,
// not the arithmetic, set the speed.
// The probe reads with the widest loads the CPU has: scalar 8-byte loads read ~20% less
// than the memory delivers on the 2-core EPYC VM (46-49 against 60-66 GB/s), which would
// flatter every roofline stated against it.
__attribute__((target("avx512f"))) uint64_t read_sum_avx512(const uint64_t* p, int64_t n) {
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    // Software prefetch 2 KiB ahead as well: when the VM's memory is in its slow state the
    // hardware prefetcher alone reads less than the kernels do (36 against 52 GB/s once).
    for (int l = 0; l < 4; ++l) _mm_prefetch(reinterpret_cast<const char*>(p + i + 256 + 8 * l), _MM_HINT_T0);
    a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
    b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 8));
    c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 16));
    d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 24));
  }
  uint64_t s = static_cast<uint64_t>(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d))));
  for (; i < n; ++i) s += p[i];
  return s;
}

__attribute__((target("avx2"))) uint64_t read_sum_avx2(const uint64_t* p, int64_t n) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) s += p[i];
  return s;
}

uint64_t read_sum_scalar(const uint64_t* p, int64_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

uint64_t read_sum(const uint64_t* p, int64_t n) {
  const platform::CpuFeatures& f = platform::cpu_features();
  if (f.avx512) return read_sum_avx512(p, n);
  if (f.avx2) return read_sum_avx2(p, n);
  return read_sum_scalar(p, n);
}

// Reads a buffer far larger than the last-level cache on n threads (the caller and n - 1
// started for each pass, so no idle pool spins beside a measurement): `hearth bench
// --memory`'s passes and the probes around each --roofline token.
class Probe {
 public:
  static Expected<Probe> create(int n_threads, int64_t bytes) {
    Probe pr;
    pr.nt_ = n_threads;
    pr.n_ = bytes / 8;
    // Huge pages where the kernel gives them, as the interleaved weights have.
    auto buf = platform::PageBuffer::allocate(static_cast<size_t>(pr.n_ * 8));
    if (!buf) return make_error("bandwidth probe: {}", buf.error());
    pr.buf_ = std::move(*buf);
    // Each thread writes (faults in) the part it will read, so pages sit near their reader.
    pr.on_threads([&pr](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) pr.words()[i] = static_cast<uint64_t>(i);
      return uint64_t{0};
    });
    return pr;
  }
  // One pass: GB/s (1 GB = 1e9 bytes).
  double read_gb_per_s() {
    const auto t0 = Clock::now();
    on_threads([this](int64_t b, int64_t e) { return read_sum(words() + b, e - b); });
    ++passes_;
    return static_cast<double>(bytes()) / seconds_since(t0) / 1e9;
  }
  int64_t bytes() const { return n_ * 8; }
  // The sum of everything read so far is checked, so the reads cannot be optimised away.
  bool read_back_ok() const {
    return sum_ == static_cast<uint64_t>(passes_) * (static_cast<uint64_t>(n_) * (n_ - 1) / 2);
  }

 private:
  uint64_t* words() const { return reinterpret_cast<uint64_t*>(buf_.data()); }
  // f(begin, end) on thread i's share of the words, i < nt_; adds up what they return.
  template <class F>
  void on_threads(F f) {
    std::vector<uint64_t> sums(static_cast<size_t>(nt_));
    auto part = [&](int ti) {
      int64_t b, e;
      platform::ThreadPool::chunk(n_, ti, nt_, &b, &e);
      sums[static_cast<size_t>(ti)] = f(b, e);
    };
    std::vector<std::thread> threads;
    for (int ti = 1; ti < nt_; ++ti) threads.emplace_back(part, ti);
    part(0);
    for (std::thread& t : threads) t.join();
    for (uint64_t v : sums) sum_ += v;
  }

  int nt_ = 1;
  int64_t n_ = 0;
  platform::PageBuffer buf_;
  uint64_t sum_ = 0;
  int passes_ = 0;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace

void mean_stddev(const std::vector<double>& v, double* mean, double* stddev) {
  *mean = 0;
  *stddev = 0;
  if (v.empty()) return;
  for (double x : v) *mean += x;
  *mean /= static_cast<double>(v.size());
  if (v.size() < 2) return;
  double ss = 0;
  for (double x : v) ss += (x - *mean) * (x - *mean);
  *stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
}

Expected<BenchResult> run_bench(const engine::Model& model, const BenchParams& p,
                                const std::function<void(const std::string&)>& progress) {
  if (p.n_prompt < 0 || p.n_gen < 0) return make_error("token counts must not be negative");
  if (p.n_prompt == 0 && p.n_gen == 0) return make_error("nothing to measure: both -p and -n are 0");
  if (p.reps < 1 || p.reps > 1000) return make_error("--reps {} is out of range (1 to 1000)", p.reps);
  if (p.n_parallel < 1 || p.n_parallel > 64)
    return make_error("--parallel {} is out of range (1 to 64)", p.n_parallel);
  if (p.depth < 0) return make_error("--depth must not be negative");
  if (p.depth > 0 && p.n_parallel > 1) return make_error("--depth works with --parallel 1 only");
  if (p.roofline && (p.n_gen == 0 || p.n_parallel > 1))
    return make_error("--roofline measures the decode test: it needs -n > 0 and --parallel 1");
  const engine::HParams& hp = model.hparams();
  engine::ContextParams cp;
  cp.n_ctx = p.depth + std::max<int64_t>(p.n_prompt, p.n_gen);
  cp.n_batch = std::max<int64_t>({p.n_prompt, p.depth, 1});  // each prompt in one forward call
  cp.n_threads = p.n_threads;
  if (cp.n_ctx > hp.n_ctx_train)
    return make_error("{} tokens do not fit in this model's training context ({})", cp.n_ctx,
                      hp.n_ctx_train);
  auto ctx = engine::Context::create(model, cp);
  if (!ctx) return Error{ctx.error()};
  engine::Context& c = **ctx;

  std::mt19937_64 rng(p.seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(hp.n_vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(p.n_prompt));
  for (int32_t& t : prompt) t = tok(rng);
  std::vector<int32_t> one(1, tok(rng));
  std::vector<int32_t> context(static_cast<size_t>(p.depth));
  for (int32_t& t : context) t = tok(rng);
  // Empties the cache, then fills it with the --depth tokens (untimed).
  auto reset = [&]() -> Status {
    c.truncate(0);
    if (p.depth == 0) return {};
    return c.eval(context);
  };
  const std::string at = p.depth > 0 ? fmt::format("@d{}", p.depth) : "";

  BenchResult r;
  r.n_threads = c.n_threads();
  r.isa = kernels::kernels_isa();
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };

  // Warm-up: touches the weights (page cache -> memory) and wakes the thread pool.
  if (Status s = c.eval(one); !s) return Error{s.error()};
  c.truncate(0);

  if (p.n_prompt > 0) {
    BenchStat st = make_stat(fmt::format("pp{}{}", p.n_prompt, at), p.n_prompt);
    for (int rep = 0; rep < p.reps; ++rep) {
      if (Status s = reset(); !s) return Error{s.error()};
      const auto t0 = Clock::now();
      if (Status s = c.eval(prompt); !s) return Error{s.error()};
      st.tokens_per_s.push_back(static_cast<double>(p.n_prompt) / seconds_since(t0));
      say(fmt::format("{} rep {}/{}: {:.1f} t/s", st.name, rep + 1, p.reps, st.tokens_per_s.back()));
    }
    mean_stddev(st.tokens_per_s, &st.mean, &st.stddev);
    r.tests.push_back(std::move(st));
  }
  if (p.n_gen > 0 && p.n_parallel > 1) {
    // n_parallel sequences of their own, each fed its own token every step.
    engine::ContextParams mp = cp;
    mp.n_ctx = p.n_gen;
    mp.n_batch = p.n_parallel;
    auto ev = engine::Evaluator::create(model, mp, p.n_parallel);
    if (!ev) return Error{ev.error()};
    std::vector<std::unique_ptr<engine::Sequence>> seqs;
    std::vector<int32_t> toks(static_cast<size_t>(p.n_parallel));
    for (int s = 0; s < p.n_parallel; ++s) {
      auto q = (*ev)->new_sequence();
      if (!q) return Error{q.error()};
      seqs.push_back(std::move(*q));
      toks[static_cast<size_t>(s)] = tok(rng);
    }
    std::vector<engine::Evaluator::Item> items(static_cast<size_t>(p.n_parallel));
    std::vector<float> logits(static_cast<size_t>(p.n_parallel * hp.n_vocab));
    BenchStat st = make_stat(fmt::format("tg{}x{}", p.n_gen, p.n_parallel), p.n_gen * p.n_parallel);
    for (int rep = 0; rep < p.reps; ++rep) {
      for (size_t s = 0; s < seqs.size(); ++s) {
        seqs[s]->truncate(0);
        items[s] = {seqs[s].get(), &toks[s], 1, engine::LogitsRows::kLast, nullptr};
      }
      const auto t0 = Clock::now();
      for (int64_t i = 0; i < p.n_gen; ++i)
        if (Status s = (*ev)->step(items.data(), p.n_parallel, logits.data()); !s) return Error{s.error()};
      st.tokens_per_s.push_back(static_cast<double>(st.n_tokens) / seconds_since(t0));
      say(fmt::format("{} rep {}/{}: {:.1f} t/s", st.name, rep + 1, p.reps, st.tokens_per_s.back()));
    }
    mean_stddev(st.tokens_per_s, &st.mean, &st.stddev);
    r.tests.push_back(std::move(st));
  } else if (p.n_gen > 0) {
    BenchStat st = make_stat(fmt::format("tg{}{}", p.n_gen, at), p.n_gen);
    for (int rep = 0; rep < p.reps; ++rep) {
      if (Status s = reset(); !s) return Error{s.error()};
      const auto t0 = Clock::now();
      for (int64_t i = 0; i < p.n_gen; ++i)
        if (Status s = c.eval(one); !s) return Error{s.error()};
      st.tokens_per_s.push_back(static_cast<double>(p.n_gen) / seconds_since(t0));
      say(fmt::format("{} rep {}/{}: {:.1f} t/s", st.name, rep + 1, p.reps, st.tokens_per_s.back()));
    }
    mean_stddev(st.tokens_per_s, &st.mean, &st.stddev);
    r.tests.push_back(std::move(st));
  }
  if (p.roofline) {
    // A 256 MiB pass takes 4-7 ms here, a 1B model's token 14-25 ms: the machine is
    // sampled just around each token.
    auto probe = Probe::create(c.n_threads(), int64_t{256} << 20);
    if (!probe) return Error{probe.error()};
    RooflineStat& rl = r.roofline;
    rl.weight_bytes = model.matmul_weight_bytes();
    std::vector<double> rates;
    for (int rep = 0; rep < p.reps; ++rep) {
      if (Status s = reset(); !s) return Error{s.error()};
      for (int64_t i = 0; i < p.n_gen; ++i) {
        const double before = probe->read_gb_per_s();
        const auto t0 = Clock::now();
        if (Status s = c.eval(one); !s) return Error{s.error()};
        const double gbs = static_cast<double>(rl.weight_bytes) / seconds_since(t0) / 1e9;
        const double bw = std::max(before, probe->read_gb_per_s());
        rates.push_back(gbs);
        rl.bandwidth.push_back(bw);
        rl.shares.push_back(gbs / bw);
      }
      say(fmt::format("roofline rep {}/{}: {:.0f}% median so far", rep + 1, p.reps, 100 * median(rl.shares)));
    }
    if (!probe->read_back_ok()) return make_error("bandwidth probe read back wrong data (memory error?)");
    rl.median_share = median(rl.shares);
    rl.min_share = *std::min_element(rl.shares.begin(), rl.shares.end());
    rl.max_share = *std::max_element(rl.shares.begin(), rl.shares.end());
    rl.median_bandwidth = median(rl.bandwidth);
    rl.median_weight_gb_per_s = median(rates);
    r.has_roofline = true;
  }
  return r;
}

Expected<BandwidthResult> measure_read_bandwidth(int n_threads, int64_t bytes, int passes) {
  if (n_threads < 0 || n_threads > 1024) return make_error("thread count {} is out of range", n_threads);
  if (bytes < (1 << 20)) return make_error("buffer of {} bytes is too small to measure memory", bytes);
  if (passes < 1) return make_error("need at least one pass");
  const int nt = n_threads == 0 ? platform::physical_core_count() : n_threads;
  auto probe = Probe::create(nt, bytes);
  if (!probe) return Error{probe.error()};
  BandwidthResult r;
  r.n_threads = nt;
  r.bytes = probe->bytes();
  for (int pass = 0; pass < passes; ++pass) r.gb_per_s.push_back(probe->read_gb_per_s());
  if (!probe->read_back_ok()) return make_error("bandwidth probe read back wrong data (memory error?)");
  double sd = 0;
  mean_stddev(r.gb_per_s, &r.mean, &sd);
  r.best = *std::max_element(r.gb_per_s.begin(), r.gb_per_s.end());
  return r;
}

}  // namespace hearth::app
