#include "app/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace hearth::app {

Expected<PerplexityResult> perplexity(const engine::Model& model, const std::string& text,
                                      const PerplexityOptions& opt) {
  const engine::Tokenizer& tok = model.tokenizer();
  const int64_t n_ctx = opt.n_ctx;
  const int64_t stride = opt.stride == 0 ? n_ctx : opt.stride;
  if (n_ctx < 16) return make_error("--ctx {} is too small for perplexity (at least 16)", n_ctx);
  if (stride < 1 || stride > n_ctx) return make_error("--stride {} must be between 1 and --ctx ({})", stride, n_ctx);
  const std::vector<int32_t> tokens = tok.encode(text, tok.add_bos(), false);
  PerplexityResult res;
  res.n_text_tokens = static_cast<int64_t>(tokens.size());
  if (res.n_text_tokens < n_ctx)
    return make_error("the text is {} tokens; perplexity with --ctx {} needs at least that many", tokens.size(), n_ctx);
  res.n_windows = (res.n_text_tokens - n_ctx) / stride + 1;
  if (opt.max_windows > 0) res.n_windows = std::min(res.n_windows, opt.max_windows);

  engine::ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_batch = n_ctx;
  cp.n_threads = opt.n_threads;
  auto ctx = engine::Context::create(model, cp);
  if (!ctx) return Error{ctx.error()};

  const int64_t V = model.hparams().n_vocab;
  const int64_t first = std::max(n_ctx / 2, n_ctx - stride);
  double nll_sum = 0, nll_sq = 0;
  std::vector<int32_t> window(static_cast<size_t>(n_ctx));
  for (int64_t w = 0; w < res.n_windows; ++w) {
    std::copy_n(tokens.begin() + w * stride, n_ctx, window.begin());
    if (tok.add_bos() && tok.bos() >= 0) window[0] = tok.bos();
    (*ctx)->truncate(0);
    if (Status s = (*ctx)->eval(window, true); !s) return Error{s.error()};
    const float* logits = (*ctx)->logits();
    for (int64_t i = first; i < n_ctx; ++i) {
      // The logits at position i - 1 predict token i.
      const float* l = logits + (i - 1) * V;
      const float mx = *std::max_element(l, l + V);
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(l[v] - mx));
      const double nll = std::log(sum) + mx - l[window[i]];
      nll_sum += nll;
      nll_sq += nll * nll;
      ++res.n_scored;
    }
    if (opt.on_window) opt.on_window(w, res.n_windows, std::exp(nll_sum / static_cast<double>(res.n_scored)));
  }
  const double n = static_cast<double>(res.n_scored);
  const double mean = nll_sum / n;
  const double var = std::max(0.0, nll_sq / n - mean * mean);
  res.ppl = std::exp(mean);
  res.ppl_stderr = res.ppl * std::sqrt(var / std::max(1.0, n - 1));
  return res;
}

}  // namespace hearth::app
