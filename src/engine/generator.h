// Prefill + decode with streaming: the one place that turns a prompt into an answer.
//
// A Generation reuses the part of a sequence's cache that equals the start of the new
// prompt (a chat turn only evaluates what is new), has the rest evaluated, then samples
// one token at a time until an end-of-generation token, a stop string, max_tokens, a full
// context or cancellation. Text reaches on_text as soon as it is valid UTF-8 and cannot
// be the start of a stop string. generate() runs one Generation on a Context (hearth run,
// generate); the server's scheduler runs several in one batch.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/json_constraint.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/stop_strings.h"
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

// One answer being generated, a step at a time: the sampler, the stop strings and the
// streaming built from GenerateParams, for one sequence. generate() drives one; the
// server's scheduler drives several whose tokens it evaluates together. The driver
// evaluates, the Generation decides what:
//   Generation g(model, params, on_text, cancel);
//   auto rest = g.start(seq, prompt);   // evaluate *rest into seq
//   for (int32_t id = g.next(logits, seq); id >= 0; id = g.next(logits, seq))
//     ...evaluate {id} into seq...      // logits: the last evaluated token's row
//   GenerateResult r = g.finish();
// Thread safety: not shared; one thread drives it.
class Generation {
 public:
  Generation(const Model& model, const GenerateParams& params, TextCallback on_text,
             const std::atomic<bool>* cancel = nullptr);
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Keeps the part of seq's cache that equals the start of prompt (a chat turn only
  // evaluates what is new; at least the last prompt token is left so that its logits
  // come out) and returns the prompt tokens still to evaluate. Fails on an empty prompt
  // or one longer than seq's context.
  Expected<std::vector<int32_t>> start(Sequence& seq, const std::vector<int32_t>& prompt);
  // With the logits [n_vocab] of the last token evaluated into seq (they are modified):
  // samples a token, streams its text and returns it for the caller to evaluate next;
  // -1 when the answer has ended (end of generation, stop string, max_tokens, a full
  // context, cancellation).
  int32_t next(float* logits, const Sequence& seq);
  bool done() const { return done_; }
  // Releases the text held back (unless a stop string ended it) and returns the result;
  // before next() has returned -1 the answer counts as cancelled.
  GenerateResult finish();

 private:
  void emit(std::string_view text);
  int32_t end(StopReason reason);

  using Clock = std::chrono::steady_clock;
  const Tokenizer& tok_;
  GenerateParams params_;
  TextCallback on_text_;
  const std::atomic<bool>* cancel_;
  Sampler sampler_;
  StreamDecoder decoder_;
  StopMatcher stops_;
  std::optional<JsonTokenFilter> json_;
  GenerateResult res_;
  bool keep_going_ = true;  // on_text has not asked to stop
  bool done_ = false;
  Clock::time_point t_start_, t_first_;
};

// Prefill + decode of one prompt on ctx with a Generation.
Expected<GenerateResult> generate(Context& ctx, const std::vector<int32_t>& prompt,
                                  const GenerateParams& params, const TextCallback& on_text,
                                  const std::atomic<bool>* cancel = nullptr);

}  // namespace hearth::engine
