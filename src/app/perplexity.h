// Perplexity of a model over a text, the way llama.cpp's llama-perplexity measures it, so
// the two can be compared: the text is tokenized once; windows of n_ctx tokens start every
// `stride` tokens; in each window the first token is replaced by BOS when the model adds
// one, and the tokens at positions [max(n_ctx/2, n_ctx - stride), n_ctx) are scored by
// their negative log-likelihood given everything before them in the window.
// With stride = n_ctx (the default) this is llama-perplexity's chunking exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/model.h"
#include "platform/status.h"

namespace hearth::app {

struct PerplexityOptions {
  int64_t n_ctx = 512;
  int64_t stride = 0;      // 0: n_ctx
  int64_t max_windows = 0;  // 0: all
  int n_threads = 0;
  // Called after each window with its index, the count, and the running perplexity.
  std::function<void(int64_t window, int64_t n_windows, double ppl)> on_window;
};

struct PerplexityResult {
  double ppl = 0;
  double ppl_stderr = 0;  // standard error, propagated from the NLL's
  int64_t n_scored = 0;
  int64_t n_windows = 0;
  int64_t n_text_tokens = 0;
};

Expected<PerplexityResult> perplexity(const engine::Model& model, const std::string& text,
                                      const PerplexityOptions& options);

}  // namespace hearth::app
