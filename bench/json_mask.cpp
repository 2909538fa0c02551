// Cost of JSON mode per generated token: JsonTokenFilter::mask() over a real vocabulary in
// typical document states, next to a brute-force walk of every token's bytes; and the
// set-up: building the vocabulary index (once per model) and a filter over a shared index
// (once per request). Not a test: prints microseconds.
//
//   cmake --build build --target bench_json_mask
//   ./build/bench_json_mask [model.gguf]   (default: the SmolLM2 model in HEARTH_MODELS)
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/json_constraint.h"
#include "engine/tokenizer.h"
#include "format/gguf.h"

using namespace hearth;
using Clock = std::chrono::steady_clock;

namespace {

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// Median of `reps` timings of f(), in microseconds.
template <typename F>
double median_us(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(us_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  if (argc > 1) {
    path = argv[1];
  } else {
    const char* dir = std::getenv("HEARTH_MODELS");
    const char* home = std::getenv("HOME");
    path =
        (dir ? std::string(dir) : std::string(home ? home : "") + "/.local/share/hearth/models") +
        "/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  auto gguf = format::GgufFile::open(path);
  if (!gguf) {
    fmt::print(stderr, "bench_json_mask: {}\n", gguf.error());
    return 1;
  }
  auto tok = engine::Tokenizer::from_gguf(**gguf);
  if (!tok) {
    fmt::print(stderr, "bench_json_mask: {}\n", tok.error());
    return 1;
  }
  const auto n_vocab = static_cast<size_t>((*tok)->n_vocab());
  fmt::print("{}: {} tokens\n", path, n_vocab);
  std::shared_ptr<const engine::JsonVocabIndex> index;
  fmt::print("vocabulary index (once per model): {:.0f} us\n",
             median_us(5, [&] { index = std::make_shared<const engine::JsonVocabIndex>(**tok); }));
  // Per request: the filter alone, and with its first mask() (the start state).
  std::vector<float> row(n_vocab, 0.0f);
  const double filter_us = median_us(201, [&] { engine::JsonTokenFilter f(index); });
  const double first_mask_us = median_us(201, [&] {
    engine::JsonTokenFilter f(index);
    f.mask(row.data());
  });
  fmt::print("filter over it (once per request): {:.1f} us, with its first mask(): {:.1f} us\n",
             filter_us, first_mask_us);

  const char* const states[] = {"{",
                                "{\"name\": ",
                                "{\"name\": \"Ada",
                                "{\"n\": 12",
                                "{\"n\": 1.5e",
                                "{\"a\": [true",
                                "{\"s\": \"\\u00",
                                "{\"a\": {\"b\": []}"};
  // The brute force walks every token's bytes from the state (bytes read once, as the filter).
  std::vector<std::string> pieces(n_vocab);
  for (size_t id = 0; id < n_vocab; ++id)
    pieces[id] = (*tok)->token_to_piece(static_cast<int32_t>(id), false);
  std::vector<float> logits(n_vocab), scratch(n_vocab);
  for (size_t i = 0; i < n_vocab; ++i) logits[i] = static_cast<float>((i * 2654435761u) % 1000);
  fmt::print("{:<22} {:>10} {:>12} {:>14}\n", "state", "allowed", "mask() us", "brute force us");
  for (const char* s : states) {
    engine::JsonTokenFilter f(index);
    for (int32_t id : (*tok)->encode(s, false, false)) f.accept(id);
    size_t allowed = 0;
    const double mask_us = median_us(200, [&] {
      scratch = logits;
      allowed = f.mask(scratch.data());
    });
    const double copy_us = median_us(200, [&] { scratch = logits; });
    const double brute_us = median_us(20, [&] {
      for (size_t id = 0; id < n_vocab; ++id) {
        engine::JsonRecognizer r = f.recognizer();
        if (pieces[id].empty() || !r.feed(pieces[id])) scratch[id] = -1;
      }
    });
    fmt::print("{:<22} {:>10} {:>12.1f} {:>14.0f}\n", s, allowed, mask_us - copy_us, brute_us);
  }
  return 0;
}
