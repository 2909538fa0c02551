#include "engine/arch/batch.h"

#include <algorithm>
#include <cstring>

#include "kernels/ops.h"
#include "kernels/type_kernels.h"

namespace hearth::engine {
namespace {

// n f32 to f16 with the dispatched F16 converter (F16C where the CPU has it).
void to_f16(const float* x, kernels::f16_t* y, int64_t n) {
  static const kernels::FromFloatFn convert = kernels::type_kernels(format::TensorType::F16).from_float;
  convert(x, y, n);
}

}  // namespace

int64_t batch_rows(const SeqTokens* seqs, int n_seqs) {
  int64_t rows = 0;
  for (int s = 0; s < n_seqs; ++s) rows += seqs[s].n_tokens;
  return rows;
}

int64_t attention_heads_per_item(const SeqTokens* seqs, int n_seqs, int64_t n_head_kv,
                                 int64_t n_rep, int n_threads) {
  int64_t max_kv = 0;
  for (int s = 0; s < n_seqs; ++s) max_kv = std::max(max_kv, seqs[s].state->n_past + seqs[s].n_tokens);
  const bool group = batch_rows(seqs, n_seqs) * n_head_kv >= 4 * n_threads || max_kv >= kGroupHeadsFromKv;
  return group ? n_rep : 1;
}

int row_sequence(const SeqTokens* seqs, int64_t t, int64_t& i) {
  int s = 0;
  i = t;
  while (i >= seqs[s].n_tokens) i -= seqs[s++].n_tokens;
  return s;
}

void append_kv(const SeqTokens* seqs, int n_seqs, int64_t il, int64_t kv_dim, const float* k,
               const float* v) {
  for (int64_t s = 0, r = 0; s < n_seqs; r += seqs[s].n_tokens, ++s) {
    const ForwardState& st = *seqs[s].state;
    const int64_t at = (il * st.n_ctx + st.n_past) * kv_dim, n = seqs[s].n_tokens * kv_dim;
    // To f16, rounded to nearest even (the same bits on every ISA: F16C or half.h).
    to_f16(k + r * kv_dim, st.k_cache.get() + at, n);
    to_f16(v + r * kv_dim, st.v_cache.get() + at, n);
  }
}

int64_t gather_output_rows(const SeqTokens* seqs, int n_seqs, const float* x, int64_t n_embd,
                           const float* norm, float eps, float* out) {
  int64_t n_out = 0;
  for (int64_t s = 0, r = 0; s < n_seqs; r += seqs[s].n_tokens, ++s) {
    const SeqTokens& sq = seqs[s];
    for (int64_t i = 0; i < sq.n_tokens; ++i) {
      const float* xr = x + (r + i) * n_embd;
      if (sq.normed) kernels::rmsnorm(xr, norm, sq.normed + i * n_embd, n_embd, eps);
      if (sq.logits == LogitsRows::kAll || (sq.logits == LogitsRows::kLast && i == sq.n_tokens - 1))
        kernels::rmsnorm(xr, norm, out + n_out++ * n_embd, n_embd, eps);
    }
  }
  return n_out;
}

void advance(const SeqTokens* seqs, int n_seqs) {
  for (int s = 0; s < n_seqs; ++s) seqs[s].state->n_past += seqs[s].n_tokens;
}

}  // namespace hearth::engine
