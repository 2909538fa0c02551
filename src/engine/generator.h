// Prefill + decode loop with streaming: the one place that turns a prompt into an answer.
//
// generate() reuses the part of the context's cache that equals the start of the new
// prompt (a chat turn only evaluates what is new), evaluates the rest in batches, then
// samples one token at a time until an end-of-generation token, a stop string,
// max_tokens, a full context or cancellation. Text reaches on_text as soon as it is valid
// UTF-8 and cannot be the start of a stop string.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"
#include "platform/status.h"

namespace hearth::engine {

struct GenerateParams {
  SamplerParams sampling;
  int64_t max_tokens = -1;  // < 0: until the context is full
  std::vector<std::string> stop;
  bool json_object = false;  // JSON mode: the text is a JSON object (engine/json_constraint.h)
};

enum class StopReason { kEndOfGeneration, kStopString, kMaxTokens, kContextFull, kCancelled };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (including a final end-of-generation id)
  std::string text;             // the streamed text, stop string excluded
  StopReason reason = StopReason::kEndOfGeneration;
  int64_t n_prompt = 0;         // prompt tokens
  int64_t n_prompt_evaluated = 0;  // of those, not found in the cache
  double prefill_seconds = 0;
  double decode_seconds = 0;
  int64_t n_decoded = 0;  // tokens sampled
};

// Streams text; return false to stop early (counts as cancelled).
using TextCallback = std::function<bool(std::string_view text)>;

Expected<GenerateResult> generate(Context& ctx, const std::vector<int32_t>& prompt,
                                  const GenerateParams& params, const TextCallback& on_text,
                                  const std::atomic<bool>* cancel = nullptr);

}  // namespace hearth::engine
