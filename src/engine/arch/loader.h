// Helpers for architecture files: read hyperparameters and look up weight tensors with
// their expected shapes, collecting the first error so a loader reads top to bottom.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/arch/arch.h"
#include "format/gguf.h"
#include "kernels/ops.h"
#include "platform/mapped_file.h"

namespace hearth::engine {

// A weight matrix [n_rows, n_cols] (GGUF ne0 = n_cols): in the mapped file, or after
// interleave_weights in its buffer, interleaved (kernels/interleave.h).
struct WeightRef {
  format::TensorType type = format::TensorType::F32;
  const void* data = nullptr;
  int64_t n_cols = 0;
  int64_t n_rows = 0;
  bool interleaved = false;
};

// y [n_tokens, w.n_rows] = x [n_tokens, w.n_cols] w^T (kernels::matmul), and w as one of
// matmul_shared's outputs.
inline void matmul(const WeightRef& w, const float* x, int64_t n_tokens, float* y, void* scratch,
                   platform::ThreadPool& pool) {
  kernels::matmul(w.type, w.data, w.n_rows, w.n_cols, x, n_tokens, y, scratch, pool, w.interleaved);
}
inline kernels::MatmulOut matmul_out(const WeightRef& w, float* y) {
  return {w.type, w.data, w.n_rows, y, w.interleaved};
}

// Repacks every matrix of `weights` that this CPU's kernels read faster interleaved
// (kernels::interleave_supported) into one buffer, on n_threads threads: points each
// WeightRef there (refs to the same data move together) and releases the file's pages of
// the data moved, so the process holds each weight once. Refs are left as they are where
// nothing applies, or when HEARTH_INTERLEAVE=0 is set (for comparisons). The buffer must
// outlive the refs.
Expected<platform::PageBuffer> interleave_weights(const format::GgufFile& gguf,
                                                  const std::vector<WeightRef*>& weights,
                                                  int n_threads);

class WeightLoader {
 public:
  WeightLoader(const format::GgufFile& gguf, std::string arch) : gguf_(gguf), arch_(std::move(arch)) {}

  // Reads <arch>.block_count, embedding_length, feed_forward_length, attention.head_count,
  // head_count_kv, key_length, layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count,
  // rope.scaling.*, context_length; n_vocab from the tokenizer; checks they are consistent.
  Status read_common_hparams(HParams& hp);
  // A matrix of ne = {n_cols, n_rows} of a type Hearth computes; on error returns an empty
  // ref and records the error.
  WeightRef matrix(const std::string& name, int64_t n_cols, int64_t n_rows);
  // An F32 vector of n values.
  const float* vector(const std::string& name, int64_t n);
  Status status() const { return status_; }

 private:
  const format::GgufTensor* tensor(const std::string& name);
  void fail(Error e) {
    if (status_) status_ = Status(std::move(e));
  }

  const format::GgufFile& gguf_;
  std::string arch_;
  Status status_;
};

}  // namespace hearth::engine
