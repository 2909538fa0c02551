// GGUF architecture "gemma3" (Gemma 3 text decoder; Gemma 3 technical report, arXiv
// 2503.19786): the llama layout plus a norm on each head of q and k, a norm after the
// attention and after the FFN blocks, GeGLU, scaled embeddings, a tied output head, and
// layers that alternate five local (sliding-window) layers with one global layer.
//
//   x = embed(token) * sqrt(n_embd)                          // [n_tokens, n_embd]
//   for each layer (global when (il + 1) % period == 0, period 6 unless the file says):
//     h = rmsnorm(x) * attn_norm
//     q, k, v = h Wq, h Wk, h Wv                             // [n_tokens, heads * head_dim]
//     q = rmsnorm(q) * q_norm, k = rmsnorm(k) * k_norm       // per head
//     rope(q), rope(k): NeoX pairs, base 10000 (or rope.freq_base_swa) on local layers,
//                       freq_base on global ones
//     a = softmax(q k^T / sqrt(head_dim) + mask) v           // local: last `window` keys
//     x += rmsnorm(a Wo) * post_attention_norm
//     h = rmsnorm(x) * ffn_norm
//     x += rmsnorm((gelu_tanh(h Wgate) * (h Wup)) Wdown) * post_ffw_norm
//   logits = rmsnorm(x) * output_norm  Wembed^T             // [n_vocab]
//   logits = cap * tanh(logits / cap)   when the file sets final_logit_softcapping
//
// Gemma's norms multiply by (1 + w); llama.cpp's converter stores 1 + w in the GGUF, so
// the file's weights are used as they are (checked against the float64 reference:
// scripts/reference/gemma3_numpy.py). The GGUF has no query_pre_attn_scalar: Gemma 3
// 270M..12B use head_dim, as here. The KV cache keeps every position on local layers too
// (simple, and attention reads only the window).
//
// A forward pass may carry several sequences: their tokens are the rows of one batch for
// every matmul; only attention looks at which sequence (which cache) a row is from.
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "engine/arch/arch.h"
#include "engine/arch/batch.h"
#include "engine/arch/loader.h"
#include "kernels/activations.h"
#include "kernels/attention.h"
#include "kernels/ops.h"

namespace hearth::engine {
namespace {

// Defaults from the report, for files without attention.sliding_window_pattern or
// rope.freq_base_swa (llama.cpp's converter writes neither for Gemma 3).
constexpr int64_t kGlobalEvery = 6;         // 5 local layers, then 1 global
constexpr float kLocalRopeBase = 10000.0f;  // local layers keep RoPE base 10k

struct Layer {
  bool global;
  const float* attn_norm;
  WeightRef wq, wk, wv, wo;
  const float* q_norm;  // [head_dim]
  const float* k_norm;  // [head_dim]
  const float* post_attn_norm;
  const float* ffn_norm;
  WeightRef w_gate, w_up, w_down;
  const float* post_ffw_norm;
  // The matrices only matmul reads, of a Layer or a const Layer.
  template <class L>
  static auto matrices(L& l) { return std::array{&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}; }
};

class Gemma3 final : public ArchModel {
 public:
  HParams hp;
  std::vector<Layer> layers;
  WeightRef tok_embd;
  const float* output_norm = nullptr;
  WeightRef output;
  int64_t window = 0;        // keys a local layer's query sees, itself included
  float local_rope_base = kLocalRopeBase;
  float final_cap = 0.0f;    // 0: no logit softcapping

  const HParams& hparams() const override { return hp; }

  // Scratch layout, for B = n_batch tokens:
  //   x, h: [B, n_embd]; q, attn: [B, q_dim]; k, v: [B, kv_dim]; gate, up: [B, n_ff];
  //   rope_local, rope_global: [B, rot_dim]; scores: [n_threads, n_rep, n_ctx]
  int64_t scratch_floats(int64_t B, int64_t n_ctx, int n_threads) const override {
    return B * (2 * hp.n_embd + 2 * hp.q_dim() + 2 * hp.kv_dim() + 2 * hp.n_ff + 2 * hp.rot_dim) +
           static_cast<int64_t>(n_threads) * (hp.n_head / hp.n_head_kv) * n_ctx;
  }

  std::vector<WeightRef*> matmul_weights() override {
    std::vector<WeightRef*> w{&output};
    for (Layer& l : layers)
      for (WeightRef* r : Layer::matrices(l)) w.push_back(r);
    return w;
  }

  int64_t act_bytes(int64_t B) const override {
    int64_t m = kernels::matmul_scratch_bytes(output.type, output.n_cols, B);
    for (const Layer& l : layers)
      for (const WeightRef* w : Layer::matrices(l))
        m = std::max(m, kernels::matmul_scratch_bytes(w->type, w->n_cols, B));
    return 3 * m;  // matmul_shared converts q/k/v's input once per activation type
  }

  // Row r of the batch is token i of sequence s, at position seqs[s].state->n_past + i.
  void forward(Workspace& ws, const SeqTokens* seqs, int n_seqs, float* logits) const override {
    platform::ThreadPool& pool = *ws.pool;
    const int64_t B = batch_rows(seqs, n_seqs);
    const int64_t D = hp.n_embd, QD = hp.q_dim(), KVD = hp.kv_dim(), F = hp.n_ff;
    const int64_t hd = hp.head_dim, rd = hp.rot_dim, n_rep = hp.n_head / hp.n_head_kv;
    float* x = ws.scratch.get();
    float* h = x + B * D;
    float* q = h + B * D;
    float* attn = q + B * QD;
    float* k = attn + B * QD;
    float* v = k + B * KVD;
    float* gate = v + B * KVD;
    float* up = gate + B * F;
    float* rope_local = up + B * F;
    float* rope_global = rope_local + B * rd;
    float* scores = rope_global + B * rd;
    void* aq = ws.act_q.get();
    const float kq_scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const float embd_scale = std::sqrt(static_cast<float>(D));

    for (int64_t s = 0, r = 0; s < n_seqs; ++s)
      for (int64_t i = 0; i < seqs[s].n_tokens; ++i, ++r) {
        float* xr = x + r * D;
        kernels::get_row(tok_embd.type, tok_embd.data, D, seqs[s].tokens[i], xr);
        for (int64_t c = 0; c < D; ++c) xr[c] *= embd_scale;
        const int64_t pos = seqs[s].state->n_past + i;
        kernels::rope_angles(rope_local + r * rd, rd, pos, local_rope_base, 1.0f);
        kernels::rope_angles(rope_global + r * rd, rd, pos, hp.rope_base, hp.rope_scale);
      }

    // Query heads per attention work item, the same for every layer (batch.h).
    const int64_t per = attention_heads_per_item(seqs, n_seqs, hp.n_head_kv, n_rep, pool.size());
    const int64_t items_per_row = hp.n_head / per;

    for (int64_t il = 0; il < hp.n_layer; ++il) {
      const Layer& L = layers[il];
      const float* rope_cs = L.global ? rope_global : rope_local;

      // Attention block.
      for (int64_t t = 0; t < B; ++t) kernels::rmsnorm(x + t * D, L.attn_norm, h + t * D, D, hp.rms_eps);
      const kernels::MatmulOut qkv[] = {matmul_out(L.wq, q),
                                        matmul_out(L.wk, k),
                                        matmul_out(L.wv, v)};
      kernels::matmul_shared(qkv, 3, D, h, B, aq, pool);  // q, k, v: [B, QD], [B, KVD] x2
      for (int64_t t = 0; t < B; ++t) {
        const float* cs = rope_cs + t * rd;
        for (int64_t hh = 0; hh < hp.n_head; ++hh) {
          float* qh = q + t * QD + hh * hd;
          kernels::rmsnorm(qh, L.q_norm, qh, hd, hp.rms_eps);
          kernels::rope_apply(qh, cs, rd, true);
        }
        for (int64_t hh = 0; hh < hp.n_head_kv; ++hh) {
          float* kh = k + t * KVD + hh * hd;
          kernels::rmsnorm(kh, L.k_norm, kh, hd, hp.rms_eps);
          kernels::rope_apply(kh, cs, rd, true);
        }
      }
      append_kv(seqs, n_seqs, il, KVD, k, v);

      // Token i of a sequence, at position p, sees its cache rows [0, p] on a global layer
      // and [max(0, p + 1 - window), p] on a local one. A work item is one row and `per`
      // query heads of one KV head: all n_rep of them (each K and V row read once for them
      // all) or one (attention_heads_per_item, batch.h). The bits are the same.
      pool.run_items(B * items_per_row, [&](int64_t w, int ti) {
        const int64_t t = w / items_per_row, hh = w % items_per_row * per, kvh = hh / n_rep;
        int64_t i;
        const ForwardState& st = *seqs[row_sequence(seqs, t, i)].state;
        const int64_t pos = st.n_past + i;
        const int64_t first = L.global ? 0 : std::max<int64_t>(0, pos + 1 - window);
        const int64_t at = (il * st.n_ctx + first) * KVD + kvh * hd;
        kernels::attention_heads(q + t * QD + hh * hd, hd, per, st.k_cache.get() + at,
                                 st.v_cache.get() + at, KVD, pos + 1 - first, hd, kq_scale,
                                 scores + ti * n_rep * ws.n_ctx, attn + t * QD + hh * hd, hd);
      });
      matmul(L.wo, attn, B, h, aq, pool);
      for (int64_t t = 0; t < B; ++t) {
        kernels::rmsnorm(h + t * D, L.post_attn_norm, h + t * D, D, hp.rms_eps);
        for (int64_t c = 0; c < D; ++c) x[t * D + c] += h[t * D + c];
      }

      // Feed-forward block.
      for (int64_t t = 0; t < B; ++t) kernels::rmsnorm(x + t * D, L.ffn_norm, h + t * D, D, hp.rms_eps);
      const kernels::MatmulOut gate_up[] = {matmul_out(L.w_gate, gate),
                                            matmul_out(L.w_up, up)};
      kernels::matmul_shared(gate_up, 2, D, h, B, aq, pool);  // [B, F] x2
      if (B == 1) {
        kernels::geglu(gate, up, gate, F);  // a pool run would cost more than it saves
      } else {
        pool.run_items(B, [&](int64_t t, int) { kernels::geglu(gate + t * F, up + t * F, gate + t * F, F); });
      }
      matmul(L.w_down, gate, B, h, aq, pool);
      for (int64_t t = 0; t < B; ++t) {
        kernels::rmsnorm(h + t * D, L.post_ffw_norm, h + t * D, D, hp.rms_eps);
        for (int64_t c = 0; c < D; ++c) x[t * D + c] += h[t * D + c];
      }
    }

    // Output head: final norm of the rows each sequence asked for, gathered into h, then
    // one matmul for all of them.
    const int64_t n_out = gather_output_rows(seqs, n_seqs, x, D, output_norm, hp.rms_eps, h);
    if (n_out > 0)
      matmul(output, h, n_out, logits, aq, pool);
    if (final_cap > 0)
      for (int64_t i = 0; i < n_out * hp.n_vocab; ++i) logits[i] = final_cap * std::tanh(logits[i] / final_cap);
    advance(seqs, n_seqs);
  }
};

}  // namespace

Expected<std::unique_ptr<ArchModel>> load_gemma3(const format::GgufFile& gguf) {
  auto m = std::make_unique<Gemma3>();
  WeightLoader ld(gguf, "gemma3");
  HParams& hp = m->hp;
  if (Status s = ld.read_common_hparams(hp); !s) return Error{s.error()};
  auto window = gguf.get_uint("gemma3.attention.sliding_window");
  if (!window || *window == 0 || *window > (1ull << 24))
    return make_error("{}: metadata 'gemma3.attention.sliding_window' is missing or out of range (1..2^24)",
                      gguf.name());
  m->window = static_cast<int64_t>(*window);
  int64_t global_every = kGlobalEvery;
  if (gguf.find("gemma3.attention.sliding_window_pattern")) {
    auto period = gguf.get_uint("gemma3.attention.sliding_window_pattern");
    if (!period || *period == 0 || *period > 1024)
      return make_error("{}: 'gemma3.attention.sliding_window_pattern' must be a layer period (1..1024); "
                        "per-layer lists are not supported", gguf.name());
    global_every = static_cast<int64_t>(*period);
  }
  if (auto base = gguf.get_float("gemma3.rope.freq_base_swa")) {
    if (!(*base > 1 && *base < 1e12))
      return make_error("{}: 'gemma3.rope.freq_base_swa' = {} is out of range", gguf.name(), *base);
    m->local_rope_base = static_cast<float>(*base);
  }
  if (gguf.find("gemma3.attn_logit_softcapping"))
    return make_error("{}: attention logit softcapping (Gemma 2 style) is not supported", gguf.name());
  if (auto cap = gguf.get_float("gemma3.final_logit_softcapping")) {
    if (!(*cap >= 0 && *cap < 1e6))
      return make_error("{}: final_logit_softcapping {} is out of range", gguf.name(), *cap);
    m->final_cap = static_cast<float>(*cap);
  }

  m->tok_embd = ld.matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
  m->output_norm = ld.vector("output_norm.weight", hp.n_embd);
  m->output = gguf.find_tensor("output.weight") ? ld.matrix("output.weight", hp.n_embd, hp.n_vocab)
                                                : m->tok_embd;  // tied, as Gemma 3 ships
  m->layers.resize(hp.n_layer);
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    Layer& L = m->layers[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    L.global = (i + 1) % global_every == 0;
    L.attn_norm = ld.vector(p + "attn_norm.weight", hp.n_embd);
    L.wq = ld.matrix(p + "attn_q.weight", hp.n_embd, hp.q_dim());
    L.wk = ld.matrix(p + "attn_k.weight", hp.n_embd, hp.kv_dim());
    L.wv = ld.matrix(p + "attn_v.weight", hp.n_embd, hp.kv_dim());
    L.q_norm = ld.vector(p + "attn_q_norm.weight", hp.head_dim);
    L.k_norm = ld.vector(p + "attn_k_norm.weight", hp.head_dim);
    L.wo = ld.matrix(p + "attn_output.weight", hp.q_dim(), hp.n_embd);
    L.post_attn_norm = ld.vector(p + "post_attention_norm.weight", hp.n_embd);
    L.ffn_norm = ld.vector(p + "ffn_norm.weight", hp.n_embd);
    L.w_gate = ld.matrix(p + "ffn_gate.weight", hp.n_embd, hp.n_ff);
    L.w_up = ld.matrix(p + "ffn_up.weight", hp.n_embd, hp.n_ff);
    L.w_down = ld.matrix(p + "ffn_down.weight", hp.n_ff, hp.n_embd);
    L.post_ffw_norm = ld.vector(p + "post_ffw_norm.weight", hp.n_embd);
  }
  if (Status s = ld.status(); !s) return Error{s.error()};
  return std::unique_ptr<ArchModel>(std::move(m));
}

}  // namespace hearth::engine
