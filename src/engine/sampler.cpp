#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hearth::engine {

namespace {

using Candidate = std::pair<float, int32_t>;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kMaxFinite = std::numeric_limits<float>::max();

// Strict total order (higher value first, then lower id), so sorts and partial sorts
// give the same result on every standard library. Values are never NaN here.
bool higher_first(const Candidate& a, const Candidate& b) {
  if (a.first != b.first) return a.first > b.first;
  return a.second < b.second;
}

// NaN never wins; +inf becomes finite so that max-subtraction in the softmax stays finite.
float sanitize(float x) {
  if (std::isnan(x)) return kNegInf;
  if (x > kMaxFinite) return kMaxFinite;
  return x;
}

}  // namespace

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab < 0 ? 0 : n_vocab), rng_(params.seed) {
  counts_.assign(static_cast<size_t>(n_vocab_), 0);
  candidates_.resize(static_cast<size_t>(n_vocab_));
  // The ring grows to repeat_last_n by push_back (amortized, not per token) so that a
  // huge window does not allocate up front.
  if (params_.repeat_last_n > 0) {
    history_.reserve(std::min<size_t>(static_cast<size_t>(params_.repeat_last_n), 4096));
  }
}

void Sampler::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  history_.clear();
  history_pos_ = 0;
  history_len_ = 0;
  rng_.seed(params_.seed);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || token >= n_vocab_) return;
  const int window = params_.repeat_last_n;
  if (window == 0) return;
  ++counts_[static_cast<size_t>(token)];
  if (window < 0) {  // unbounded: counts only, nothing is ever evicted
    ++history_len_;
    return;
  }
  if (history_.size() < static_cast<size_t>(window)) {
    history_.push_back(token);
    history_len_ = history_.size();
    return;
  }
  int32_t& slot = history_[history_pos_];
  --counts_[static_cast<size_t>(slot)];
  slot = token;
  history_pos_ = (history_pos_ + 1) % static_cast<size_t>(window);
}

int32_t Sampler::count_in_window(int32_t token) const {
  if (token < 0 || token >= n_vocab_) return 0;
  return counts_[static_cast<size_t>(token)];
}

void Sampler::apply_penalties(float* logits) const {
  if (logits == nullptr) return;
  for (int32_t i = 0; i < n_vocab_; ++i) logits[i] = sanitize(logits[i]);
  if (history_len_ == 0) return;

  const float rp = params_.repeat_penalty;
  const bool repeat = std::isfinite(rp) && rp > 0.0f && rp != 1.0f;
  const float freq = std::isfinite(params_.frequency_penalty) ? params_.frequency_penalty : 0.0f;
  const float pres = std::isfinite(params_.presence_penalty) ? params_.presence_penalty : 0.0f;
  if (!repeat && freq == 0.0f && pres == 0.0f) return;

  for (int32_t i = 0; i < n_vocab_; ++i) {
    const int32_t c = counts_[static_cast<size_t>(i)];
    if (c <= 0) continue;
    float l = logits[i];
    if (repeat) l = l > 0.0f ? l / rp : l * rp;
    l -= static_cast<float>(c) * freq + pres;
    logits[i] = sanitize(l);
  }
}

int32_t Sampler::sample(float* logits) {
  if (n_vocab_ <= 0 || logits == nullptr) return -1;
  apply_penalties(logits);

  if (!(params_.temp > 0.0f)) {
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab_; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return best;
  }

  // Tokens at -inf can never be drawn; leaving them out also keeps the sorts short.
  auto* c = candidates_.data();
  size_t n = 0;
  for (int32_t i = 0; i < n_vocab_; ++i) {
    if (logits[i] > kNegInf) c[n++] = {logits[i], i};
  }
  if (n == 0) return 0;

  // c[0, sorted) holds the `sorted` best candidates in descending order.
  size_t sorted = 0;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    const size_t k = static_cast<size_t>(params_.top_k);
    std::partial_sort(c, c + k, c + n, higher_first);
    n = k;
    sorted = k;
  }

  // Softmax of logit / temp; the max term is exp(0) = 1, so sum >= 1.
  float max_logit = c[0].first;
  for (size_t i = 1; i < n; ++i) max_logit = std::max(max_logit, c[i].first);
  const float temp = params_.temp;
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float p = std::exp((c[i].first - max_logit) / temp);
    c[i].first = p;
    sum += p;
  }
  for (size_t i = 0; i < n; ++i) c[i].first = static_cast<float>(c[i].first / sum);

  if (params_.top_p < 1.0f) {  // NaN: off
    // Sort lazily: extend the sorted prefix only as far as the cumulative sum needs.
    double cum = 0.0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      if (i == sorted) {
        const size_t next = std::min(n, std::max<size_t>(2 * sorted, 64));
        std::partial_sort(c + sorted, c + next, c + n, higher_first);
        sorted = next;
      }
      cum += c[i].first;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }

  if (params_.min_p > 0.0f) {  // NaN: off
    float p_max = c[0].first;
    for (size_t i = 1; i < n; ++i) p_max = std::max(p_max, c[i].first);
    // min_p > 1 would drop everything; the most probable token always stays.
    const float threshold = std::min(params_.min_p * p_max, p_max);
    size_t m = 0;
    for (size_t i = 0; i < n; ++i) {
      if (c[i].first >= threshold) c[m++] = c[i];
    }
    n = m;
  }

  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += c[i].first;
  // 53 random bits -> [0, 1): the same on every standard library, unlike std distributions.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  const double target = u * total;
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += c[i].first;
    if (target < acc) return c[i].second;
  }
  return c[n - 1].second;
}

}  // namespace hearth::engine
