// GGUF architecture "llama" (Llama 2/3, SmolLM, Mistral-style): pre-norm decoder with
// RMSNorm, rotary positions (adjacent pairs), grouped-query attention and a SwiGLU FFN.
//
//   x = embed(token)                                   // [n_tokens, n_embd]
//   for each layer:
//     h = rmsnorm(x) * attn_norm
//     q, k, v = h Wq, h Wk, h Wv; rope(q), rope(k)     // [n_tokens, n_head * head_dim] ...
//     x += softmax(q k^T / sqrt(head_dim), causal) v Wo
//     h = rmsnorm(x) * ffn_norm
//     x += (silu(h Wgate) * (h Wup)) Wdown
//   logits = rmsnorm(x) * output_norm  Woutput         // [n_vocab]
//
// A forward pass may carry several sequences: their tokens are the rows of one batch for
// every matmul, and only attention looks at which sequence (which cache) a row is from.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "engine/arch/arch.h"
#include "engine/arch/batch.h"
#include "engine/arch/loader.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

namespace hearth::engine {
namespace {

struct Layer {
  const float* attn_norm;
  WeightRef wq, wk, wv, wo;
  const float* ffn_norm;
  WeightRef w_gate, w_up, w_down;
  // The matrices only matmul reads, of a Layer or a const Layer.
  template <class L>
  static auto matrices(L& l) { return std::array{&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}; }
};

class Llama final : public ArchModel {
 public:
  HParams hp;
  std::vector<Layer> layers;
  WeightRef tok_embd;
  const float* output_norm = nullptr;
  WeightRef output;
  const float* rope_freqs = nullptr;  // [rot_dim/2] or null

  const HParams& hparams() const override { return hp; }

  // Scratch layout, for B = n_batch tokens:
  //   x, h: [B, n_embd]; q, attn: [B, q_dim]; k, v: [B, kv_dim]; gate, up: [B, n_ff];
  //   scores: [n_threads, n_rep, n_ctx]; rope: [B, rot_dim]
  int64_t scratch_floats(int64_t B, int64_t n_ctx, int n_threads) const override {
    return B * (2 * hp.n_embd + 2 * hp.q_dim() + 2 * hp.kv_dim() + 2 * hp.n_ff + hp.rot_dim) +
           static_cast<int64_t>(n_threads) * (hp.n_head / hp.n_head_kv) * n_ctx;
  }

  std::vector<WeightRef*> matmul_weights() override {
    std::vector<WeightRef*> w{&output};
    for (Layer& l : layers)
      for (WeightRef* r : Layer::matrices(l)) w.push_back(r);
    return w;
  }

  int64_t act_bytes(int64_t B) const override {
    int64_t m = 0;
    for (const Layer& l : layers)
      for (const WeightRef* w : Layer::matrices(l))
        m = std::max(m, kernels::matmul_scratch_bytes(w->type, w->n_cols, B));
    m = std::max(m, kernels::matmul_scratch_bytes(output.type, output.n_cols, B));
    return 3 * m;  // matmul_shared converts q/k/v's input once per activation type
  }

  // The rows of the batch are the sequences' tokens one after another: row r is token i
  // of sequence s, at position seqs[s].state->n_past + i.
  void forward(Workspace& ws, const SeqTokens* seqs, int n_seqs, float* logits) const override {
    platform::ThreadPool& pool = *ws.pool;
    const int64_t B = batch_rows(seqs, n_seqs);
    const int64_t D = hp.n_embd, QD = hp.q_dim(), KVD = hp.kv_dim(), F = hp.n_ff;
    const int64_t hd = hp.head_dim, n_rep = hp.n_head / hp.n_head_kv;
    float* x = ws.scratch.get();
    float* h = x + B * D;
    float* q = h + B * D;
    float* attn = q + B * QD;
    float* k = attn + B * QD;
    float* v = k + B * KVD;
    float* gate = v + B * KVD;
    float* up = gate + B * F;
    float* rope_cs = up + B * F;
    float* scores = rope_cs + B * hp.rot_dim;
    void* aq = ws.act_q.get();
    const float kq_scale = 1.0f / std::sqrt(static_cast<float>(hd));

    for (int64_t s = 0, r = 0; s < n_seqs; ++s)
      for (int64_t i = 0; i < seqs[s].n_tokens; ++i, ++r) {
        kernels::get_row(tok_embd.type, tok_embd.data, D, seqs[s].tokens[i], x + r * D);
        kernels::rope_angles(rope_cs + r * hp.rot_dim, hp.rot_dim, seqs[s].state->n_past + i,
                             hp.rope_base, hp.rope_scale, rope_freqs);
      }

    // Query heads per attention work item, the same for every layer (batch.h).
    const int64_t per = attention_heads_per_item(seqs, n_seqs, hp.n_head_kv, n_rep, pool.size());
    const int64_t items_per_row = hp.n_head / per;

    for (int64_t il = 0; il < hp.n_layer; ++il) {
      const Layer& L = layers[il];

      // Attention block.
      for (int64_t t = 0; t < B; ++t) kernels::rmsnorm(x + t * D, L.attn_norm, h + t * D, D, hp.rms_eps);
      const kernels::MatmulOut qkv[] = {matmul_out(L.wq, q),
                                        matmul_out(L.wk, k),
                                        matmul_out(L.wv, v)};
      kernels::matmul_shared(qkv, 3, D, h, B, aq, pool);  // q, k, v: [B, QD], [B, KVD] x2
      for (int64_t t = 0; t < B; ++t) {
        const float* cs = rope_cs + t * hp.rot_dim;
        for (int64_t hh = 0; hh < hp.n_head; ++hh) kernels::rope_apply(q + t * QD + hh * hd, cs, hp.rot_dim, false);
        for (int64_t hh = 0; hh < hp.n_head_kv; ++hh) kernels::rope_apply(k + t * KVD + hh * hd, cs, hp.rot_dim, false);
      }
      append_kv(seqs, n_seqs, il, KVD, k, v);

      // Token i of a sequence sees its cache rows [0, n_past + i]. A work item is one row
      // and `per` query heads of one KV head: all n_rep of them (each K and V row read once
      // for them all) or one (attention_heads_per_item, batch.h). The bits are the same.
      pool.run_items(B * items_per_row, [&](int64_t w, int ti) {
        const int64_t t = w / items_per_row, hh = w % items_per_row * per, kvh = hh / n_rep;
        int64_t i;
        const ForwardState& st = *seqs[row_sequence(seqs, t, i)].state;
        const int64_t layer = il * st.n_ctx * KVD + kvh * hd;  // [n_ctx, kv_dim] of this layer
        kernels::attention_heads(q + t * QD + hh * hd, hd, per, st.k_cache.get() + layer,
                                 st.v_cache.get() + layer, KVD, st.n_past + i + 1, hd, kq_scale,
                                 scores + ti * n_rep * ws.n_ctx, attn + t * QD + hh * hd, hd);
      });
      matmul(L.wo, attn, B, h, aq, pool);
      for (int64_t i = 0; i < B * D; ++i) x[i] += h[i];

      // Feed-forward block.
      for (int64_t t = 0; t < B; ++t) kernels::rmsnorm(x + t * D, L.ffn_norm, h + t * D, D, hp.rms_eps);
      const kernels::MatmulOut gate_up[] = {matmul_out(L.w_gate, gate),
                                            matmul_out(L.w_up, up)};
      kernels::matmul_shared(gate_up, 2, D, h, B, aq, pool);  // [B, F] x2
      if (B == 1) {
        kernels::swiglu(gate, up, gate, F);  // a pool run would cost more than it saves
      } else {
        pool.run_items(B, [&](int64_t t, int) {
          kernels::swiglu(gate + t * F, up + t * F, gate + t * F, F);
        });
      }
      matmul(L.w_down, gate, B, h, aq, pool);
      for (int64_t i = 0; i < B * D; ++i) x[i] += h[i];
    }

    // Output head: final norm of the rows each sequence asked for, gathered into h, then
    // one matmul for all of them.
    const int64_t n_out = gather_output_rows(seqs, n_seqs, x, D, output_norm, hp.rms_eps, h);
    if (n_out > 0)
      matmul(output, h, n_out, logits, aq, pool);
    advance(seqs, n_seqs);
  }
};

}  // namespace

Expected<std::unique_ptr<ArchModel>> load_llama(const format::GgufFile& gguf) {
  auto m = std::make_unique<Llama>();
  WeightLoader ld(gguf, "llama");
  HParams& hp = m->hp;
  if (Status s = ld.read_common_hparams(hp); !s) return Error{s.error()};

  m->tok_embd = ld.matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
  m->output_norm = ld.vector("output_norm.weight", hp.n_embd);
  m->output = gguf.find_tensor("output.weight") ? ld.matrix("output.weight", hp.n_embd, hp.n_vocab)
                                                : m->tok_embd;  // tied embeddings
  if (gguf.find_tensor("rope_freqs.weight")) m->rope_freqs = ld.vector("rope_freqs.weight", hp.rot_dim / 2);
  m->layers.resize(hp.n_layer);
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    Layer& L = m->layers[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    L.attn_norm = ld.vector(p + "attn_norm.weight", hp.n_embd);
    L.wq = ld.matrix(p + "attn_q.weight", hp.n_embd, hp.q_dim());
    L.wk = ld.matrix(p + "attn_k.weight", hp.n_embd, hp.kv_dim());
    L.wv = ld.matrix(p + "attn_v.weight", hp.n_embd, hp.kv_dim());
    L.wo = ld.matrix(p + "attn_output.weight", hp.q_dim(), hp.n_embd);
    L.ffn_norm = ld.vector(p + "ffn_norm.weight", hp.n_embd);
    L.w_gate = ld.matrix(p + "ffn_gate.weight", hp.n_embd, hp.n_ff);
    L.w_up = ld.matrix(p + "ffn_up.weight", hp.n_embd, hp.n_ff);
    L.w_down = ld.matrix(p + "ffn_down.weight", hp.n_ff, hp.n_embd);
  }
  if (Status s = ld.status(); !s) return Error{s.error()};
  return std::unique_ptr<ArchModel>(std::move(m));
}

}  // namespace hearth::engine
