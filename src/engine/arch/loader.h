// Helpers for architecture files: read hyperparameters and look up weight tensors with
// their expected shapes, collecting the first error so a loader reads top to bottom.
#pragma once

#include <cstdint>
#include <string>

#include "engine/arch/arch.h"
#include "format/gguf.h"

namespace hearth::engine {

// A weight matrix [n_rows, n_cols] in the mapped file (GGUF ne0 = n_cols).
struct WeightRef {
  format::TensorType type = format::TensorType::F32;
  const void* data = nullptr;
  int64_t n_cols = 0;
  int64_t n_rows = 0;
};

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
