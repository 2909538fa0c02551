// Bookkeeping every architecture's multi-sequence forward pass shares. The rows of a batch
// are the sequences' tokens one after another: row r is token i of sequence s, at position
// seqs[s].state->n_past + i.
#pragma once

#include <cstdint>

#include "engine/arch/arch.h"

namespace hearth::engine {

// Total rows of the batch.
int64_t batch_rows(const SeqTokens* seqs, int n_seqs);

// How many of a KV head's n_rep query heads one attention work item takes: all of them
// (each K/V row read once for them all) when there are enough items to share out over the
// threads, or once some sequence's cache holds kGroupHeadsFromKv tokens: reading K and V,
// not arithmetic, then bounds decode (135M decode at 1,024 cached tokens: 150 t/s with one
// head per item, 160 grouped; 3,000: 96 vs 103). Otherwise one. Only a speed choice: the
// bits are the same either way.
constexpr int64_t kGroupHeadsFromKv = 512;
int64_t attention_heads_per_item(const SeqTokens* seqs, int n_seqs, int64_t n_head_kv,
                                 int64_t n_rep, int n_threads);

// The sequence that batch row t belongs to; i is set to the token's index within it.
int row_sequence(const SeqTokens* seqs, int64_t t, int64_t& i);

// Stores layer il's K and V rows ([rows, kv_dim] each, f32) into every sequence's cache
// (f16) at that sequence's n_past.
void append_kv(const SeqTokens* seqs, int n_seqs, int64_t il, int64_t kv_dim, const float* k,
               const float* v);

// Final norm of x [rows, n_embd]: writes each sequence's `normed` rows when asked, and
// gathers the normed rows whose logits are wanted into out, in batch order. Returns how
// many rows it gathered.
int64_t gather_output_rows(const SeqTokens* seqs, int n_seqs, const float* x, int64_t n_embd,
                           const float* norm, float eps, float* out);

// Advances every sequence's n_past past its tokens (the end of a forward pass).
void advance(const SeqTokens* seqs, int n_seqs);

}  // namespace hearth::engine
