#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "engine/json_constraint.h"
#include "engine/stop_strings.h"

namespace hearth::engine {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kEndOfGeneration: return "stop";
    case StopReason::kStopString: return "stop";
    case StopReason::kMaxTokens: return "length";
    case StopReason::kContextFull: return "context_full";
    case StopReason::kCancelled: return "cancelled";
  }
  return "?";
}

Expected<GenerateResult> generate(Context& ctx, const std::vector<int32_t>& prompt,
                                  const GenerateParams& params, const TextCallback& on_text,
                                  const std::atomic<bool>* cancel) {
  using clock = std::chrono::steady_clock;
  GenerateResult res;
  res.n_prompt = static_cast<int64_t>(prompt.size());
  if (prompt.empty()) return make_error("the prompt is empty");
  if (res.n_prompt > ctx.n_ctx())
    return make_error("the prompt is {} tokens but the context holds {}; shorten it or raise --ctx", res.n_prompt,
                      ctx.n_ctx());

  // Reuse the cached prefix; always evaluate at least the last prompt token for logits.
  const std::vector<int32_t>& cached = ctx.tokens();
  size_t common = 0;
  while (common < cached.size() && common < prompt.size() && cached[common] == prompt[common]) ++common;
  if (common == prompt.size()) --common;
  ctx.truncate(static_cast<int64_t>(common));
  const std::vector<int32_t> rest(prompt.begin() + static_cast<std::ptrdiff_t>(common), prompt.end());
  res.n_prompt_evaluated = static_cast<int64_t>(rest.size());

  const auto t0 = clock::now();
  if (Status s = ctx.eval(rest); !s) return Error{s.error()};
  const auto t1 = clock::now();
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  const Tokenizer& tok = ctx.model().tokenizer();
  Sampler sampler(params.sampling, static_cast<int32_t>(ctx.model().hparams().n_vocab));
  for (int32_t t : prompt) sampler.accept(t);
  StreamDecoder decoder(tok);
  StopMatcher stops(params.stop);
  std::optional<JsonTokenFilter> json;
  if (params.json_object) json.emplace(tok, JsonLimits{32, 64});
  bool keep_going = true;
  auto emit = [&](std::string_view text) {
    if (text.empty()) return;
    res.text.append(text);
    if (on_text && !on_text(text)) keep_going = false;
  };
  res.tokens.reserve(static_cast<size_t>(std::max<int64_t>(0, std::min(params.max_tokens, ctx.n_ctx()))));
  std::vector<int32_t> one(1);

  for (;;) {
    if (cancel && cancel->load(std::memory_order_relaxed)) {
      res.reason = StopReason::kCancelled;
      break;
    }
    if (params.max_tokens >= 0 && res.n_decoded >= params.max_tokens) {
      res.reason = StopReason::kMaxTokens;
      break;
    }
    float* logits = ctx.logits();
    if (json && json->mask(logits) == 0) break;  // no token can continue the document
    const int32_t id = sampler.sample(logits);
    ++res.n_decoded;
    res.tokens.push_back(id);
    if (tok.is_eog(id)) {
      res.reason = StopReason::kEndOfGeneration;
      break;
    }
    sampler.accept(id);
    if (json) json->accept(id);
    const StopMatcher::Result r = stops.feed(decoder.push(id));
    emit(r.text);
    if (r.stopped) {
      res.reason = StopReason::kStopString;
      break;
    }
    if (json && json->complete()) break;  // the object has closed: end of generation
    if (!keep_going) {
      res.reason = StopReason::kCancelled;
      break;
    }
    if (ctx.n_past() >= ctx.n_ctx()) {
      res.reason = StopReason::kContextFull;
      break;
    }
    one[0] = id;
    if (Status s = ctx.eval(one); !s) return Error{s.error()};
  }
  if (res.reason != StopReason::kStopString) {
    const StopMatcher::Result r = stops.feed(decoder.flush());
    emit(r.text);
    emit(stops.flush());
  }
  res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return res;
}

}  // namespace hearth::engine
