// A loaded model: the mapped GGUF, its architecture's weights view, tokenizer and chat
// template. Immutable after load() (but for the JSON-mode index, built once on first use
// under std::call_once); share it between sequences (Context objects) and threads.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/arch/arch.h"
#include "engine/tokenizer.h"
#include "format/gguf.h"
#include "platform/mapped_file.h"
#include "platform/status.h"

namespace hearth::engine {

class JsonVocabIndex;

class Model {
 public:
  // Opens and validates a GGUF model: known architecture, supported tensor types,
  // shapes consistent with the hyperparameters, a tokenizer.
  static Expected<std::unique_ptr<Model>> load(const std::string& path);

  const format::GgufFile& gguf() const { return *gguf_; }
  const ArchModel& arch() const { return *arch_; }
  const HParams& hparams() const { return arch_->hparams(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // tokenizer.chat_template, or when the file has none the architecture's default
  // (default_chat_template: Gemma's for gemma3); nullopt when there is neither.
  std::optional<std::string> chat_template() const;
  // Bytes the KV cache takes for n_ctx positions.
  int64_t kv_bytes(int64_t n_ctx) const;
  // Bytes of the weight matrices one decode step reads (every matmul weight once; a tied
  // output head is the embedding table): the numerator of the memory roofline.
  int64_t matmul_weight_bytes() const { return matmul_weight_bytes_; }
  // JSON mode's index of the tokenizer's vocabulary (engine/json_constraint.h): built by
  // the first caller (one pass over the vocabulary), then shared. Thread-safe.
  std::shared_ptr<const JsonVocabIndex> json_vocab_index() const;

 private:
  std::unique_ptr<format::GgufFile> gguf_;
  std::unique_ptr<ArchModel> arch_;
  platform::PageBuffer interleaved_;  // the weights interleave_weights moved (arch/loader.h)
  int64_t matmul_weight_bytes_ = 0;
  std::unique_ptr<Tokenizer> tokenizer_;
  mutable std::once_flag json_index_once_;
  mutable std::shared_ptr<const JsonVocabIndex> json_index_;  // set once under json_index_once_
};

struct ContextParams {
  int64_t n_ctx = 4096;   // 0 = the model's training context
  int64_t n_batch = 256;  // tokens per forward call (prefill chunk; all sequences together)
  int n_threads = 0;      // 0 = physical cores
};

// One sequence's KV cache and the tokens in it, evaluated by an Evaluator.
// Invariant: tokens() has n_past() entries, the tokens whose K and V the cache holds.
// Thread safety: not shared; one thread at a time.
class Sequence {
 public:
  int64_t n_past() const { return state_.n_past; }
  int64_t n_ctx() const { return state_.n_ctx; }
  // The tokens in the cache, in order ([n_past]).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // Forgets positions >= n (n <= n_past): keeps a shared prefix for reuse.
  void truncate(int64_t n);

 private:
  friend class Evaluator;
  ForwardState state_;
  std::vector<int32_t> tokens_;  // reserved to n_ctx: no allocation while decoding
};

// Runs forward passes over one or several Sequences with one thread pool and one scratch
// workspace: several sequences' tokens in one pass share every weight read.
// Thread safety: not shared; one thread drives it and the sequences it evaluates.
class Evaluator {
 public:
  // Checks the parameters and that the weights plus n_seqs caches of n_ctx fit in memory.
  static Expected<std::unique_ptr<Evaluator>> create(const Model& model, const ContextParams& params,
                                                     int n_seqs = 1);
  // A new empty sequence with a cache of n_ctx() positions.
  Expected<std::unique_ptr<Sequence>> new_sequence() const;

  struct Item {
    Sequence* seq = nullptr;
    const int32_t* tokens = nullptr;  // [n_tokens], appended to seq
    int64_t n_tokens = 0;
    LogitsRows logits = LogitsRows::kLast;
    float* normed = nullptr;  // if set: [n_tokens, n_embd] hidden states after output_norm
  };
  // Evaluates the items in one forward pass. logits: [rows, n_vocab], the rows the items
  // asked for, in order. Fails (nothing evaluated) unless every item has 1 or more tokens
  // in the vocabulary that fit in its sequence's context, the sequences are distinct and
  // all the tokens together are at most n_batch(). A token's logits do not depend on the
  // other items (kernels::matmul gives each row the same bits in any batch).
  Status step(const Item* items, int n_items, float* logits);

  const Model& model() const { return model_; }
  int64_t n_ctx() const { return ws_.n_ctx; }
  int64_t n_batch() const { return ws_.n_batch; }
  int n_threads() const { return pool_->size(); }

 private:
  explicit Evaluator(const Model& m) : model_(m) {}
  const Model& model_;
  std::unique_ptr<platform::ThreadPool> pool_;
  Workspace ws_;
  std::vector<SeqTokens> seqs_;  // step()'s arguments for forward(), reserved
};

// One sequence with its own evaluator: what `hearth run`, `generate`, `perplexity` and
// `bench` use. Thread safety: not shared; one thread drives it.
class Context {
 public:
  static Expected<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);

  // Evaluates tokens after those already seen, n_batch at a time. Fails (nothing
  // evaluated) when they do not fit in the context. On success logits() is the last
  // token's [n_vocab] row, or with all_logits every token's rows [n_tokens, n_vocab].
  Status eval(const std::vector<int32_t>& tokens, bool all_logits = false);
  // A sentence embedding: evaluates tokens from an empty cache and writes out = [n_embd],
  // the mean over the tokens of the hidden state after output_norm, scaled to unit L2
  // norm. Afterwards the cache holds exactly `tokens` (as after eval from empty) and
  // logits() is unchanged. Fails (out untouched) on an empty or too long input, and when
  // `cancelled` (asked before each n_batch chunk, on this thread) returns true.
  Status embed(const std::vector<int32_t>& tokens, std::vector<float>& out,
               const std::function<bool()>& cancelled = nullptr);
  const float* logits() const { return logits_.data(); }
  float* logits() { return logits_.data(); }
  int64_t n_past() const { return seq_->n_past(); }
  const std::vector<int32_t>& tokens() const { return seq_->tokens(); }
  int64_t n_ctx() const { return seq_->n_ctx(); }
  int n_threads() const { return eval_->n_threads(); }
  void truncate(int64_t n) { seq_->truncate(n); }
  Sequence& sequence() { return *seq_; }
  Evaluator& evaluator() { return *eval_; }
  const Model& model() const { return eval_->model(); }

 private:
  Context() = default;
  std::unique_ptr<Evaluator> eval_;
  std::unique_ptr<Sequence> seq_;
  std::vector<float> logits_;
  std::vector<float> normed_;  // embed()'s [n_batch, n_embd] hidden states
};

}  // namespace hearth::engine
