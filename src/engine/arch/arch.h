// The interface every architecture file implements (engine/arch/<name>.cpp).
//
// An ArchModel holds pointers into the mapped GGUF (weights are never copied) and the
// hyperparameters; it is immutable after loading and may be shared by several
// sequences. forward() writes only the Workspace and the ForwardStates it is given.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "kernels/half.h"
#include "platform/status.h"
#include "platform/thread_pool.h"

namespace hearth::engine {

struct WeightRef;  // loader.h

struct HParams {
  std::string arch;
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;  // key/value length per head
  int64_t rot_dim = 0;   // rotated part of each head
  float rms_eps = 1e-5f;
  float rope_base = 10000.0f;
  float rope_scale = 1.0f;  // linear position scale (1 / scaling factor)
  int64_t n_params = 0;     // parameter count of all tensors

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// One sequence's KV cache, sized once at creation.
//
// Invariants: the cache rows [0, n_past) of every layer hold K and V of the tokens the
// sequence has seen, in order; rows past n_past are garbage; n_past <= n_ctx.
struct ForwardState {
  int64_t n_ctx = 0;
  int64_t n_past = 0;
  // f16, as llama.cpp keeps them: half the bytes attention reads per token at long contexts.
  std::unique_ptr<kernels::f16_t[]> k_cache;  // [n_layer, n_ctx, kv_dim]
  std::unique_ptr<kernels::f16_t[]> v_cache;  // [n_layer, n_ctx, kv_dim]
};

// Scratch for one forward pass of up to n_batch tokens (all its sequences together),
// for caches of up to n_ctx positions. Shared by the sequences it evaluates, one pass at
// a time.
struct Workspace {
  int64_t n_batch = 0;
  int64_t n_ctx = 0;
  std::unique_ptr<float[]> scratch;  // arch-defined layout
  std::unique_ptr<uint8_t[]> act_q;  // quantized activations for matmul
  platform::ThreadPool* pool = nullptr;
};

// Which logits rows a sequence adds to forward()'s output.
enum class LogitsRows { kNone, kLast, kAll };

// One sequence's part of a forward pass: its tokens go at positions
// state->n_past .. n_past + n_tokens - 1.
struct SeqTokens {
  ForwardState* state = nullptr;
  const int32_t* tokens = nullptr;  // [n_tokens]
  int64_t n_tokens = 0;
  LogitsRows logits = LogitsRows::kLast;
  float* normed = nullptr;  // if set: [n_tokens, n_embd] hidden states after output_norm
};

class ArchModel {
 public:
  virtual ~ArchModel() = default;
  virtual const HParams& hparams() const = 0;
  // Floats of Workspace::scratch and bytes of act_q needed for n_batch tokens.
  virtual int64_t scratch_floats(int64_t n_batch, int64_t n_ctx, int n_threads) const = 0;
  virtual int64_t act_bytes(int64_t n_batch) const = 0;
  // Evaluates several sequences in one pass: the weight matmuls run over all their tokens
  // together, attention runs per sequence against its own cache. Appends each sequence's
  // tokens to its cache and advances its n_past. logits: [n_rows, n_vocab], the rows of
  // the sequences in order (one for kLast, n_tokens for kAll, none for kNone).
  // Requires: the sum of n_tokens <= ws.n_batch, every n_tokens >= 1, every
  // n_past + n_tokens <= state->n_ctx <= ws.n_ctx, distinct states.
  virtual void forward(Workspace& ws, const SeqTokens* seqs, int n_seqs, float* logits) const = 0;
  // The weight matrices that only matmul reads (not the embedding table, which get_row
  // reads in the file's layout), for interleave_weights (loader.h).
  virtual std::vector<WeightRef*> matmul_weights() = 0;
};

// One loader per architecture file; model.cpp picks by general.architecture.
Expected<std::unique_ptr<ArchModel>> load_llama(const format::GgufFile& gguf);
Expected<std::unique_ptr<ArchModel>> load_gemma3(const format::GgufFile& gguf);

}  // namespace hearth::engine
