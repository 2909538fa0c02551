// A loaded model: the mapped GGUF, its architecture's weights view, tokenizer and chat
// template. Immutable after load(); share it between sequences (Context objects).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/arch/arch.h"
#include "engine/tokenizer.h"
#include "format/gguf.h"
#include "platform/status.h"

namespace hearth::engine {

class Model {
 public:
  // Opens and validates a GGUF model: known architecture, supported tensor types,
  // shapes consistent with the hyperparameters, a tokenizer.
  static Expected<std::unique_ptr<Model>> load(const std::string& path);

  const format::GgufFile& gguf() const { return *gguf_; }
  const ArchModel& arch() const { return *arch_; }
  const HParams& hparams() const { return arch_->hparams(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // tokenizer.chat_template, when the file has one.
  std::optional<std::string> chat_template() const;
  // Bytes the KV cache takes for n_ctx positions.
  int64_t kv_bytes(int64_t n_ctx) const;

 private:
  std::unique_ptr<format::GgufFile> gguf_;
  std::unique_ptr<ArchModel> arch_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

struct ContextParams {
  int64_t n_ctx = 4096;   // 0 = the model's training context
  int64_t n_batch = 256;  // tokens per forward call during prefill
  int n_threads = 0;      // 0 = physical cores
};

// One sequence being evaluated: KV cache, scratch, and a thread pool.
// Thread safety: not shared; one thread drives it.
class Context {
 public:
  static Expected<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);

  // Evaluates tokens after those already seen. Fails (nothing evaluated) when they do not
  // fit in the context. On success logits() is the last token's [n_vocab] row, or with
  // all_logits every token's rows [n_tokens, n_vocab].
  Status eval(const std::vector<int32_t>& tokens, bool all_logits = false);
  const float* logits() const { return logits_.data(); }
  float* logits() { return logits_.data(); }
  int64_t n_past() const { return state_.n_past; }
  // The tokens in the cache, in order ([n_past]).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t n_ctx() const { return state_.n_ctx; }
  int n_threads() const { return pool_->size(); }
  // Forgets positions >= n (n <= n_past): keeps a shared prefix for reuse.
  void truncate(int64_t n);
  const Model& model() const { return model_; }

 private:
  Context(const Model& m) : model_(m) {}
  const Model& model_;
  std::unique_ptr<platform::ThreadPool> pool_;
  ForwardState state_;
  std::vector<float> logits_;
  std::vector<int32_t> tokens_;  // reserved to n_ctx: no allocation while decoding
};

}  // namespace hearth::engine
