#include "engine/arch/loader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "kernels/interleave.h"
#include "kernels/type_kernels.h"
#include "platform/thread_pool.h"

namespace hearth::engine {

Status WeightLoader::read_common_hparams(HParams& hp) {
  hp.arch = arch_;
  const std::string a = arch_ + ".";
  auto need_uint = [&](const std::string& key, int64_t* out, uint64_t max) -> Status {
    auto v = gguf_.get_uint(a + key);
    if (!v) return make_error("{}: missing or non-integer metadata '{}{}'", gguf_.name(), a, key);
    if (*v == 0 || *v > max) return make_error("{}: metadata '{}{}' = {} is out of range (1..{})", gguf_.name(), a, key, *v, max);
    *out = static_cast<int64_t>(*v);
    return Status::ok();
  };
  if (Status s = need_uint("block_count", &hp.n_layer, 1024); !s) return s;
  if (Status s = need_uint("embedding_length", &hp.n_embd, 1 << 17); !s) return s;
  if (Status s = need_uint("feed_forward_length", &hp.n_ff, 1 << 20); !s) return s;
  if (Status s = need_uint("attention.head_count", &hp.n_head, 4096); !s) return s;
  if (Status s = need_uint("context_length", &hp.n_ctx_train, 1ull << 24); !s) return s;
  hp.n_head_kv = hp.n_head;
  if (gguf_.find(a + "attention.head_count_kv"))
    if (Status s = need_uint("attention.head_count_kv", &hp.n_head_kv, 4096); !s) return s;
  if (hp.n_head % hp.n_head_kv != 0)
    return make_error("{}: head_count {} is not a multiple of head_count_kv {}", gguf_.name(), hp.n_head, hp.n_head_kv);
  hp.head_dim = hp.n_embd / hp.n_head;
  if (gguf_.find(a + "attention.key_length"))
    if (Status s = need_uint("attention.key_length", &hp.head_dim, 1 << 14); !s) return s;
  if (hp.head_dim % 2 != 0) return make_error("{}: head dimension {} is odd", gguf_.name(), hp.head_dim);
  hp.rot_dim = hp.head_dim;
  if (gguf_.find(a + "rope.dimension_count"))
    if (Status s = need_uint("rope.dimension_count", &hp.rot_dim, static_cast<uint64_t>(hp.head_dim)); !s) return s;
  if (hp.rot_dim % 2 != 0) return make_error("{}: rope dimension {} is odd", gguf_.name(), hp.rot_dim);
  if (auto eps = gguf_.get_float(a + "attention.layer_norm_rms_epsilon")) hp.rms_eps = static_cast<float>(*eps);
  if (auto base = gguf_.get_float(a + "rope.freq_base")) hp.rope_base = static_cast<float>(*base);
  if (!(hp.rms_eps > 0 && hp.rms_eps < 1)) return make_error("{}: rms epsilon {} is out of range", gguf_.name(), hp.rms_eps);
  if (!(hp.rope_base > 1)) return make_error("{}: rope freq_base {} is out of range", gguf_.name(), hp.rope_base);
  if (auto type = gguf_.get_string(a + "rope.scaling.type")) {
    const double factor = gguf_.get_float(a + "rope.scaling.factor").value_or(1.0);
    if (*type == "linear" && factor > 0) {
      hp.rope_scale = static_cast<float>(1.0 / factor);
    } else if (*type != "none" && !(*type == "linear" && factor == 1.0)) {
      return make_error("{}: rope scaling '{}' is not supported yet", gguf_.name(), *type);
    }
  }
  if (const auto* toks = gguf_.get_string_array("tokenizer.ggml.tokens")) {
    hp.n_vocab = static_cast<int64_t>(toks->size());
  } else {
    return make_error("{}: missing tokenizer.ggml.tokens; the file has no vocabulary", gguf_.name());
  }
  for (const format::GgufTensor& t : gguf_.tensors()) hp.n_params += t.n_elements();
  return Status::ok();
}

const format::GgufTensor* WeightLoader::tensor(const std::string& name) {
  const format::GgufTensor* t = gguf_.find_tensor(name);
  if (!t) fail(make_error("{}: tensor '{}' is missing; the file is not a complete {} model", gguf_.name(), name, arch_));
  return t;
}

WeightRef WeightLoader::matrix(const std::string& name, int64_t n_cols, int64_t n_rows) {
  const format::GgufTensor* t = tensor(name);
  if (!t) return {};
  if (t->n_dims > 2 || t->ne[0] != n_cols || t->ne[1] != n_rows) {
    fail(make_error("{}: tensor '{}' has shape [{}, {}], expected [{}, {}] for this model's hyperparameters",
                    gguf_.name(), name, t->ne[0], t->ne[1], n_cols, n_rows));
    return {};
  }
  const kernels::TypeKernels& k = kernels::type_kernels(t->type);
  if (!k.vec_dot || !k.to_float) {
    fail(make_error("{}: tensor '{}' has type {}, which Hearth cannot compute yet", gguf_.name(), name,
                    format::type_name(t->type)));
    return {};
  }
  if (n_cols % format::traits(k.vec_dot_type).block_size != 0) {
    fail(make_error("{}: tensor '{}': row length {} does not fit {} blocks", gguf_.name(), name, n_cols,
                    format::type_name(k.vec_dot_type)));
    return {};
  }
  return WeightRef{t->type, t->data, n_cols, n_rows};
}

const float* WeightLoader::vector(const std::string& name, int64_t n) {
  const format::GgufTensor* t = tensor(name);
  if (!t) return nullptr;
  if (t->type != format::TensorType::F32 || t->n_elements() != n) {
    fail(make_error("{}: tensor '{}' should be F32 with {} values, found {} with {}", gguf_.name(), name, n,
                    format::type_name(t->type), t->n_elements()));
    return nullptr;
  }
  if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) {
    fail(make_error("{}: tensor '{}' is not 4-byte aligned", gguf_.name(), name));
    return nullptr;
  }
  return reinterpret_cast<const float*>(t->data);
}

Expected<platform::PageBuffer> interleave_weights(const format::GgufFile& gguf,
                                                  const std::vector<WeightRef*>& weights,
                                                  int n_threads) {
  const char* env = std::getenv("HEARTH_INTERLEAVE");
  if (env != nullptr && std::strcmp(env, "0") == 0) return platform::PageBuffer{};
  // Distinct data to move, in file order (the reads then go front to back).
  std::vector<WeightRef*> todo;
  for (WeightRef* w : weights)
    if (w->data != nullptr && !w->interleaved && kernels::interleave_supported(w->type, w->n_cols, w->n_rows))
      todo.push_back(w);
  std::sort(todo.begin(), todo.end(), [](const WeightRef* a, const WeightRef* b) { return a->data < b->data; });
  size_t total = 0;
  const void* last = nullptr;
  for (const WeightRef* w : todo) {
    if (w->data != last) total += (static_cast<size_t>(format::row_bytes(w->type, w->n_cols) * w->n_rows) + 63) / 64 * 64;
    last = w->data;
  }
  if (total == 0) return platform::PageBuffer{};
  auto buf = platform::PageBuffer::allocate(total);
  if (!buf) return make_error("{}: {} for the interleaved weights", gguf.name(), buf.error());
  platform::ThreadPool pool(std::max(1, n_threads));
  uint8_t* at = buf->data();
  const void* src = nullptr;
  const uint8_t* dst = nullptr;
  for (WeightRef* w : todo) {
    if (w->data != src) {
      const int64_t rows = w->n_rows, bytes = format::row_bytes(w->type, w->n_cols) * rows;
      const int64_t groups = rows / kernels::kInterleaveRows;
      const int items = static_cast<int>(std::min<int64_t>(groups, 8 * pool.size()));
      const WeightRef& c = *w;
      pool.run_items(items, [&](int64_t item, int) {
        int64_t g0, g1;
        platform::ThreadPool::chunk(groups, static_cast<int>(item), items, &g0, &g1);
        kernels::interleave_rows(c.type, c.n_cols, rows, c.data, at, g0 * kernels::kInterleaveRows,
                                 g1 * kernels::kInterleaveRows);
      });
      gguf.release(w->data, static_cast<size_t>(bytes));
      src = w->data;
      dst = at;
      at += (bytes + 63) / 64 * 64;
    }
    w->data = dst;
    w->interleaved = true;
  }
  return buf;
}

}  // namespace hearth::engine
