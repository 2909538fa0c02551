#include "engine/generator.h"

#include <algorithm>
#include <chrono>

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

Generation::Generation(const Model& model, const GenerateParams& params, TextCallback on_text,
                       const std::atomic<bool>* cancel)
    : tok_(model.tokenizer()),
      params_(params),
      on_text_(std::move(on_text)),
      cancel_(cancel),
      sampler_(params.sampling, static_cast<int32_t>(model.hparams().n_vocab)),
      decoder_(model.tokenizer()),
      stops_(params.stop) {
  // The vocabulary index is the model's, built once: set-up here is per-answer state only.
  if (params.json_object) json_.emplace(model.json_vocab_index(), JsonLimits{32, 64});
}

Expected<std::vector<int32_t>> Generation::start(Sequence& seq, const std::vector<int32_t>& prompt) {
  t_start_ = Clock::now();
  res_.n_prompt = static_cast<int64_t>(prompt.size());
  if (prompt.empty()) return make_error("the prompt is empty");
  if (res_.n_prompt > seq.n_ctx())
    return make_error("the prompt is {} tokens but the context holds {}; shorten it or raise --ctx", res_.n_prompt,
                      seq.n_ctx());

  // Reuse the cached prefix; always evaluate at least the last prompt token for logits.
  const std::vector<int32_t>& cached = seq.tokens();
  size_t common = 0;
  while (common < cached.size() && common < prompt.size() && cached[common] == prompt[common]) ++common;
  if (common == prompt.size()) --common;
  seq.truncate(static_cast<int64_t>(common));
  res_.n_prompt_evaluated = static_cast<int64_t>(prompt.size() - common);
  for (int32_t t : prompt) sampler_.accept(t);
  res_.tokens.reserve(static_cast<size_t>(std::max<int64_t>(0, std::min(params_.max_tokens, seq.n_ctx()))));
  return std::vector<int32_t>(prompt.begin() + static_cast<std::ptrdiff_t>(common), prompt.end());
}

void Generation::emit(std::string_view text) {
  if (text.empty()) return;
  res_.text.append(text);
  if (on_text_ && !on_text_(text)) keep_going_ = false;
}

int32_t Generation::end(StopReason reason) {
  res_.reason = reason;
  done_ = true;
  return -1;
}

int32_t Generation::next(float* logits, const Sequence& seq) {
  if (done_) return -1;
  if (res_.n_decoded == 0) t_first_ = Clock::now();
  if (cancel_ && cancel_->load(std::memory_order_relaxed)) return end(StopReason::kCancelled);
  if (params_.max_tokens >= 0 && res_.n_decoded >= params_.max_tokens) return end(StopReason::kMaxTokens);
  if (json_ && json_->mask(logits) == 0) return end(StopReason::kEndOfGeneration);  // nothing can continue the document
  const int32_t id = sampler_.sample(logits);
  ++res_.n_decoded;
  res_.tokens.push_back(id);
  if (tok_.is_eog(id)) return end(StopReason::kEndOfGeneration);
  sampler_.accept(id);
  if (json_) json_->accept(id);
  const StopMatcher::Result r = stops_.feed(decoder_.push(id));
  emit(r.text);
  if (r.stopped) return end(StopReason::kStopString);
  if (json_ && json_->complete()) return end(StopReason::kEndOfGeneration);  // the object has closed
  if (!keep_going_) return end(StopReason::kCancelled);
  if (seq.n_past() >= seq.n_ctx()) return end(StopReason::kContextFull);
  return id;
}

GenerateResult Generation::finish() {
  const auto now = Clock::now();
  if (!done_) {
    if (res_.n_decoded == 0) t_first_ = now;
    end(StopReason::kCancelled);
  }
  if (res_.reason != StopReason::kStopString) {
    const StopMatcher::Result r = stops_.feed(decoder_.flush());
    emit(r.text);
    emit(stops_.flush());
  }
  res_.prefill_seconds = std::chrono::duration<double>(t_first_ - t_start_).count();
  res_.decode_seconds = std::chrono::duration<double>(now - t_first_).count();
  return std::move(res_);
}

Expected<GenerateResult> generate(Context& ctx, const std::vector<int32_t>& prompt,
                                  const GenerateParams& params, const TextCallback& on_text,
                                  const std::atomic<bool>* cancel) {
  Generation g(ctx.model(), params, on_text, cancel);
  auto rest = g.start(ctx.sequence(), prompt);
  if (!rest) return Error{rest.error()};
  if (Status s = ctx.eval(*rest); !s) return Error{s.error()};
  std::vector<int32_t> one(1);
  for (one[0] = g.next(ctx.logits(), ctx.sequence()); one[0] >= 0; one[0] = g.next(ctx.logits(), ctx.sequence()))
    if (Status s = ctx.eval(one); !s) return Error{s.error()};
  return g.finish();
}

}  // namespace hearth::engine
