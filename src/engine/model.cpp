#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "engine/arch/loader.h"
#include "engine/chat_template.h"
#include "engine/json_constraint.h"

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

// Whether n tokens can be appended to a cache with n_past of n_ctx positions.
Status check_fits(int64_t n_past, int64_t n_ctx, const int32_t* tokens, int64_t n, int64_t n_vocab) {
  if (n < 1) return make_error("nothing to evaluate: the prompt is empty");
  if (n_past + n > n_ctx)
    return make_error("context is full: {} tokens already, {} more would exceed --ctx {}", n_past, n, n_ctx);
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= n_vocab)
      return make_error("token id {} is outside the vocabulary (0..{})", tokens[i], n_vocab - 1);
  return Status::ok();
}

// The architectures Hearth runs, by GGUF general.architecture: adding one is a loader in
// arch/<name>.cpp and a row here.
struct Architecture {
  std::string_view name;
  Expected<std::unique_ptr<ArchModel>> (*load)(const format::GgufFile& gguf);
};
constexpr Architecture kArchitectures[] = {
    {"llama", load_llama},
    {"gemma3", load_gemma3},
};

std::string architecture_names() {
  std::string out;
  for (const Architecture& a : kArchitectures) out += (out.empty() ? "" : ", ") + std::string(a.name);
  return out;
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
  const auto entry = std::find_if(std::begin(kArchitectures), std::end(kArchitectures),
                                  [&](const Architecture& e) { return e.name == *arch; });
  if (entry == std::end(kArchitectures))
    return make_error("{}: architecture '{}' is not supported (Hearth runs: {})", path, *arch,
                      architecture_names());
  Expected<std::unique_ptr<ArchModel>> a = entry->load(g);
  if (!a) return Error{a.error()};
  m->arch_ = std::move(*a);

  // On another thread while the tokenizer is built: the matrices this CPU reads faster
  // interleaved are repacked (arch/loader.h, kernels/interleave.h), and where nothing was,
  // the weights' page-table entries are filled, so the first prompt does not take a page
  // fault per 4 KiB. Joined before returning: the sandbox (Landlock) is applied to a
  // single-threaded process.
  Expected<platform::PageBuffer> il = platform::PageBuffer{};
  auto prepare = [&] {
    il = interleave_weights(g, m->arch_->matmul_weights(), platform::physical_core_count());
    if (il && il->size() == 0) g.prefault();
  };
  std::thread prepare_thread;
  try {
    prepare_thread = std::thread(prepare);
  } catch (const std::system_error&) {
    prepare();
  }
  auto tok = Tokenizer::from_gguf(g);
  if (prepare_thread.joinable()) prepare_thread.join();
  if (!il) return Error{il.error()};
  m->interleaved_ = std::move(*il);
  std::vector<const void*> seen;
  for (const WeightRef* w : m->arch_->matmul_weights()) {
    if (std::find(seen.begin(), seen.end(), w->data) != seen.end()) continue;
    seen.push_back(w->data);
    m->matmul_weight_bytes_ += format::row_bytes(w->type, w->n_cols) * w->n_rows;
  }
  if (!tok) return Error{tok.error()};
  m->tokenizer_ = std::move(*tok);
  if (m->tokenizer_->n_vocab() != m->hparams().n_vocab)
    return make_error("{}: tokenizer has {} tokens but the embedding has {} rows", path,
                      m->tokenizer_->n_vocab(), m->hparams().n_vocab);
  return m;
}

std::optional<std::string> Model::chat_template() const {
  auto t = gguf_->get_string("tokenizer.chat_template");
  if (t) return std::string(*t);
  if (std::string_view d = default_chat_template(hparams().arch); !d.empty()) return std::string(d);
  return std::nullopt;
}

int64_t Model::kv_bytes(int64_t n_ctx) const {
  const HParams& hp = hparams();
  return 2 * hp.n_layer * n_ctx * hp.kv_dim() * static_cast<int64_t>(sizeof(kernels::f16_t));
}

std::shared_ptr<const JsonVocabIndex> Model::json_vocab_index() const {
  std::call_once(json_index_once_,
                 [this] { json_index_ = std::make_shared<const JsonVocabIndex>(*tokenizer_); });
  return json_index_;
}

void Sequence::truncate(int64_t n) {
  state_.n_past = std::clamp<int64_t>(n, 0, state_.n_past);
  tokens_.resize(static_cast<size_t>(state_.n_past));
}

Expected<std::unique_ptr<Evaluator>> Evaluator::create(const Model& model, const ContextParams& p,
                                                       int n_seqs) {
  const HParams& hp = model.hparams();
  int64_t n_ctx = p.n_ctx == 0 ? hp.n_ctx_train : p.n_ctx;
  if (n_ctx < 1) return make_error("context size must be at least 1 (got {})", p.n_ctx);
  if (n_ctx > hp.n_ctx_train)
    return make_error("context size {} is larger than the model was trained for ({}); use --ctx {} or less",
                      n_ctx, hp.n_ctx_train, hp.n_ctx_train);
  if (p.n_threads < 0 || p.n_threads > 1024)
    return make_error("thread count {} is out of range (1..1024, or 0 for the number of cores)", p.n_threads);
  if (n_seqs < 1) return make_error("an evaluator needs at least one sequence (got {})", n_seqs);
  const int n_threads = p.n_threads == 0 ? platform::physical_core_count() : p.n_threads;
  const int64_t n_batch = std::clamp<int64_t>(p.n_batch, 1, n_ctx * n_seqs);

  const int64_t kv = n_seqs * model.kv_bytes(n_ctx);
  const int64_t need = static_cast<int64_t>(model.gguf().file_size()) + kv;
  const int64_t mem = total_memory_bytes();
  if (mem > 0 && need > mem)
    return make_error("{}: needs {:.1f} GiB (weights {:.1f} GiB + KV cache {:.1f} GiB for --ctx {} x {} sequences) but this machine has {:.1f} GiB; use a smaller --ctx or model",
                      model.gguf().name(), need / 1073741824.0, model.gguf().file_size() / 1073741824.0,
                      kv / 1073741824.0, n_ctx, n_seqs, mem / 1073741824.0);

  std::unique_ptr<Evaluator> e(new Evaluator(model));
  e->pool_ = std::make_unique<platform::ThreadPool>(n_threads);
  Workspace& ws = e->ws_;
  ws.n_ctx = n_ctx;
  ws.n_batch = n_batch;
  ws.pool = e->pool_.get();
  ws.scratch.reset(new (std::nothrow) float[model.arch().scratch_floats(n_batch, n_ctx, n_threads)]);
  ws.act_q.reset(new (std::nothrow) uint8_t[model.arch().act_bytes(n_batch)]);
  if (!ws.scratch || !ws.act_q) return make_error("out of memory allocating scratch for a batch of {}", n_batch);
  e->seqs_.reserve(static_cast<size_t>(n_seqs));
  return e;
}

Expected<std::unique_ptr<Sequence>> Evaluator::new_sequence() const {
  const HParams& hp = model_.hparams();
  std::unique_ptr<Sequence> s(new Sequence());
  ForwardState& st = s->state_;
  st.n_ctx = ws_.n_ctx;
  const size_t cache_values = static_cast<size_t>(hp.n_layer * st.n_ctx * hp.kv_dim());
  // Uninitialised on purpose: pages are touched only as positions fill.
  st.k_cache.reset(new (std::nothrow) kernels::f16_t[cache_values]);
  st.v_cache.reset(new (std::nothrow) kernels::f16_t[cache_values]);
  if (!st.k_cache || !st.v_cache) return make_error("out of memory allocating the KV cache for --ctx {}", st.n_ctx);
  s->tokens_.reserve(static_cast<size_t>(st.n_ctx));
  return s;
}

Status Evaluator::step(const Item* items, int n_items, float* logits) {
  const int64_t n_vocab = model_.hparams().n_vocab;
  int64_t total = 0;
  for (int j = 0; j < n_items; ++j) {
    const Item& it = items[j];
    const ForwardState& st = it.seq->state_;
    if (Status s = check_fits(st.n_past, st.n_ctx, it.tokens, it.n_tokens, n_vocab); !s) return s;
    for (int o = 0; o < j; ++o)
      if (items[o].seq == it.seq) return make_error("a sequence appears twice in one batch");
    total += it.n_tokens;
  }
  if (total > ws_.n_batch)
    return make_error("{} tokens in one batch; this evaluator takes at most {}", total, ws_.n_batch);
  seqs_.clear();
  for (int j = 0; j < n_items; ++j)
    seqs_.push_back({&items[j].seq->state_, items[j].tokens, items[j].n_tokens, items[j].logits,
                     items[j].normed});
  model_.arch().forward(ws_, seqs_.data(), n_items, logits);
  for (int j = 0; j < n_items; ++j)
    items[j].seq->tokens_.insert(items[j].seq->tokens_.end(), items[j].tokens, items[j].tokens + items[j].n_tokens);
  return Status::ok();
}

Expected<std::unique_ptr<Context>> Context::create(const Model& model, const ContextParams& p) {
  auto e = Evaluator::create(model, p, 1);
  if (!e) return Error{e.error()};
  auto seq = (*e)->new_sequence();
  if (!seq) return Error{seq.error()};
  std::unique_ptr<Context> c(new Context());
  c->eval_ = std::move(*e);
  c->seq_ = std::move(*seq);
  c->logits_.resize(static_cast<size_t>(model.hparams().n_vocab));
  return c;
}

Status Context::eval(const std::vector<int32_t>& tokens, bool all_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t n_vocab = model().hparams().n_vocab;
  if (Status s = check_fits(n_past(), n_ctx(), tokens.data(), n, n_vocab); !s) return s;
  if (all_logits) logits_.resize(static_cast<size_t>(n * n_vocab));
  for (int64_t i = 0; i < n; i += eval_->n_batch()) {
    const Evaluator::Item it{seq_.get(), tokens.data() + i, std::min(eval_->n_batch(), n - i),
                             all_logits ? LogitsRows::kAll : LogitsRows::kLast, nullptr};
    if (Status s = eval_->step(&it, 1, all_logits ? logits_.data() + i * n_vocab : logits_.data()); !s)
      return s;
  }
  return Status::ok();
}

Status Context::embed(const std::vector<int32_t>& tokens, std::vector<float>& out,
                      const std::function<bool()>& cancelled) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t D = model().hparams().n_embd;
  if (n == 0) return make_error("nothing to embed: the input is empty");
  if (n > n_ctx()) return make_error("the input is {} tokens but the context holds {}; shorten it", n, n_ctx());
  seq_->truncate(0);
  normed_.resize(static_cast<size_t>(eval_->n_batch() * D));
  std::vector<double> sum(static_cast<size_t>(D), 0.0);
  for (int64_t i = 0; i < n; i += eval_->n_batch()) {
    if (cancelled && cancelled()) return make_error("cancelled after {} of {} tokens", i, n);
    const int64_t b = std::min(eval_->n_batch(), n - i);
    const Evaluator::Item it{seq_.get(), tokens.data() + i, b, LogitsRows::kNone, normed_.data()};
    if (Status s = eval_->step(&it, 1, nullptr); !s) return s;
    for (int64_t t = 0; t < b; ++t)
      for (int64_t d = 0; d < D; ++d) sum[static_cast<size_t>(d)] += normed_[static_cast<size_t>(t * D + d)];
  }
  double norm2 = 0;
  for (double& v : sum) {
    v /= static_cast<double>(n);
    norm2 += v * v;
  }
  const double inv = norm2 > 0 ? 1.0 / std::sqrt(norm2) : 0.0;
  out.resize(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) out[static_cast<size_t>(d)] = static_cast<float>(sum[static_cast<size_t>(d)] * inv);
  return Status::ok();
}

}  // namespace hearth::engine
