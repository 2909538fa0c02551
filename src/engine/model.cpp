#include "engine/model.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

namespace hearth::engine {
namespace {

// Physical memory in bytes, from /proc/meminfo; 0 when unknown.
int64_t total_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return kb * 1024;
  return 0;
}

}  // namespace

Expected<std::unique_ptr<Model>> Model::load(const std::string& path) {
  auto gguf = format::GgufFile::open(path);
  if (!gguf) return Error{gguf.error()};
  std::unique_ptr<Model> m(new Model());
  m->gguf_ = std::move(*gguf);
  const format::GgufFile& g = *m->gguf_;

  auto arch = g.get_string("general.architecture");
  if (!arch) return make_error("{}: missing general.architecture; is this a model file?", path);
  Expected<std::unique_ptr<ArchModel>> a = Error{""};
  if (*arch == "llama") {
    a = load_llama(g);
  } else {
    return make_error("{}: architecture '{}' is not supported (Hearth runs: llama)", path, *arch);
  }
  if (!a) return Error{a.error()};
  m->arch_ = std::move(*a);

  auto tok = Tokenizer::from_gguf(g);
  if (!tok) return Error{tok.error()};
  m->tokenizer_ = std::move(*tok);
  if (m->tokenizer_->n_vocab() != m->hparams().n_vocab)
    return make_error("{}: tokenizer has {} tokens but the embedding has {} rows", path,
                      m->tokenizer_->n_vocab(), m->hparams().n_vocab);
  return m;
}

std::optional<std::string> Model::chat_template() const {
  auto t = gguf_->get_string("tokenizer.chat_template");
  if (!t) return std::nullopt;
  return std::string(*t);
}

int64_t Model::kv_bytes(int64_t n_ctx) const {
  const HParams& hp = hparams();
  return 2 * hp.n_layer * n_ctx * hp.kv_dim() * static_cast<int64_t>(sizeof(float));
}

Expected<std::unique_ptr<Context>> Context::create(const Model& model, const ContextParams& p) {
  const HParams& hp = model.hparams();
  int64_t n_ctx = p.n_ctx == 0 ? hp.n_ctx_train : p.n_ctx;
  if (n_ctx < 1) return make_error("context size must be at least 1 (got {})", p.n_ctx);
  if (n_ctx > hp.n_ctx_train)
    return make_error("context size {} is larger than the model was trained for ({}); use --ctx {} or less",
                      n_ctx, hp.n_ctx_train, hp.n_ctx_train);
  if (p.n_threads < 0 || p.n_threads > 1024)
    return make_error("thread count {} is out of range (1..1024, or 0 for the number of cores)", p.n_threads);
  const int n_threads = p.n_threads == 0 ? platform::physical_core_count() : p.n_threads;
  const int64_t n_batch = std::clamp<int64_t>(p.n_batch, 1, n_ctx);

  const int64_t kv = model.kv_bytes(n_ctx);
  const int64_t need = static_cast<int64_t>(model.gguf().file_size()) + kv;
  const int64_t mem = total_memory_bytes();
  if (mem > 0 && need > mem)
    return make_error("{}: needs {:.1f} GiB (weights {:.1f} GiB + KV cache {:.1f} GiB for --ctx {}) but this machine has {:.1f} GiB; use a smaller --ctx or model",
                      model.gguf().name(), need / 1073741824.0, model.gguf().file_size() / 1073741824.0,
                      kv / 1073741824.0, n_ctx, mem / 1073741824.0);

  std::unique_ptr<Context> c(new Context(model));
  c->pool_ = std::make_unique<platform::ThreadPool>(n_threads);
  ForwardState& st = c->state_;
  st.n_ctx = n_ctx;
  st.n_batch = n_batch;
  st.pool = c->pool_.get();
  const size_t cache_floats = static_cast<size_t>(hp.n_layer * n_ctx * hp.kv_dim());
  // Uninitialised on purpose: pages are touched only as positions fill.
  st.k_cache.reset(new (std::nothrow) float[cache_floats]);
  st.v_cache.reset(new (std::nothrow) float[cache_floats]);
  st.scratch.reset(new (std::nothrow) float[model.arch().scratch_floats(n_batch, n_ctx, n_threads)]);
  st.act_q.reset(new (std::nothrow) uint8_t[model.arch().act_bytes(n_batch)]);
  if (!st.k_cache || !st.v_cache || !st.scratch || !st.act_q)
    return make_error("out of memory allocating the KV cache for --ctx {}", n_ctx);
  c->logits_.resize(hp.n_vocab);
  c->tokens_.reserve(static_cast<size_t>(n_ctx));
  return c;
}

Status Context::eval(const std::vector<int32_t>& tokens, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t n_vocab = model_.hparams().n_vocab;
  if (n == 0) return make_error("nothing to evaluate: the prompt is empty");
  if (state_.n_past + n > state_.n_ctx)
    return make_error("context is full: {} tokens already, {} more would exceed --ctx {}", state_.n_past, n,
                      state_.n_ctx);
  for (int32_t t : tokens)
    if (t < 0 || t >= n_vocab) return make_error("token id {} is outside the vocabulary (0..{})", t, n_vocab - 1);
  if (all_logits) logits_.resize(static_cast<size_t>(n * n_vocab));
  for (int64_t i = 0; i < n; i += state_.n_batch) {
    const int64_t b = std::min(state_.n_batch, n - i);
    float* out = all_logits ? logits_.data() + i * n_vocab : logits_.data();
    model_.arch().forward(state_, tokens.data() + i, b, out, all_logits);
  }
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  return Status::ok();
}

void Context::truncate(int64_t n) {
  state_.n_past = std::clamp<int64_t>(n, 0, state_.n_past);
  tokens_.resize(static_cast<size_t>(state_.n_past));
}

}  // namespace hearth::engine
