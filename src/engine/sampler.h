// Token sampling: penalties, then temperature; top-k, top-p, min-p; then a seeded draw.
// temp <= 0 is greedy (argmax, ties to the lowest id). Same seed and same logits give
// the same tokens. Buffers are sized at construction: no allocation per token.
//
// Order of the steps in sample():
//   1. NaN logits count as -inf; +inf as the largest finite float (so they win, with ties
//      to the lowest id).
//   2. Penalties over the tokens accepted in the window (the last repeat_last_n; all
//      since reset() when repeat_last_n < 0; none when 0), with c = count in the window,
//      each distinct token once (llama.cpp's definitions):
//        repeat:    logit > 0 ? logit / repeat_penalty : logit * repeat_penalty
//        frequency: logit -= c * frequency_penalty
//        presence:  logit -= (c > 0) * presence_penalty
//   3. temp <= 0 (or NaN): argmax of the penalized logits, ties to the lowest id.
//   4. top-k (k <= 0 or >= n_vocab: off), keeping the k highest logits.
//   5. softmax of logit / temp over the remaining tokens.
//   6. top-p: the smallest set of most probable tokens whose probability sums to >= p
//      (at least one token).
//   7. min-p: drop tokens whose probability is below min_p * (highest probability).
//   8. renormalize and draw with the seeded mt19937_64: u = (rng() >> 11) * 2^-53, the
//      same on every standard library.
// If every logit is -inf or NaN, sample() returns 0. Out-of-range ids given to accept()
// are ignored.
//
// Thread safety: one Sampler per sequence; not shared.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace hearth::engine {

struct SamplerParams {
  float temp = 0.8f;
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; applied to tokens in the last repeat_last_n
  int repeat_last_n = 64;       // 0: no penalties; < 0: every token since reset()
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  Sampler(const SamplerParams& params, int32_t n_vocab);
  // Picks the next token from logits [n_vocab] (may modify them). Returns an id in
  // [0, n_vocab); -1 only when n_vocab <= 0 or logits is null.
  int32_t sample(float* logits);
  // Records a token of the context (prompt or generated) for the penalties.
  void accept(int32_t token);
  void reset();  // forgets the history and re-seeds
  const SamplerParams& params() const { return params_; }

  // Steps 1 and 2 of sample() alone, in place on logits [n_vocab]; exposed for tests and
  // for callers that want to inspect the penalized distribution.
  void apply_penalties(float* logits) const;
  // How many times `token` occurs in the penalty window.
  int32_t count_in_window(int32_t token) const;

 private:
  SamplerParams params_;
  int32_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<int32_t> history_;                       // ring of the last repeat_last_n tokens
  std::vector<int32_t> counts_;                        // occurrences per token within the ring
  std::vector<std::pair<float, int32_t>> candidates_;  // [n_vocab] scratch
  size_t history_pos_ = 0;
  size_t history_len_ = 0;
};

}  // namespace hearth::engine
