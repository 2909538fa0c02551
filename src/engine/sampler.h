// Token sampling: penalties, then temperature; top-k, top-p, min-p; then a seeded draw.
// temp <= 0 is greedy (argmax, ties to the lowest id). Same seed and same logits give
// the same tokens. Buffers are sized at construction: no allocation per token.
//
// Thread safety: one Sampler per sequence; not shared.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace hearth::engine {

struct SamplerParams {
  float temp = 0.8f;
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty = 1.0f;   // 1: off; applied to tokens in the last repeat_last_n
  int repeat_last_n = 64;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(const SamplerParams& params, int32_t n_vocab);
  // Picks the next token from logits [n_vocab] (may modify them).
  int32_t sample(float* logits);
  // Records a token of the context (prompt or generated) for the penalties.
  void accept(int32_t token);
  void reset();  // forgets the history and re-seeds
  const SamplerParams& params() const { return params_; }

 private:
  SamplerParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;      // ring of the last repeat_last_n tokens
  std::vector<int32_t> counts_;       // occurrences per token within the ring
  std::vector<std::pair<float, int32_t>> candidates_;  // [n_vocab] scratch
  size_t history_pos_ = 0;
  size_t history_len_ = 0;
};

}  // namespace hearth::engine
