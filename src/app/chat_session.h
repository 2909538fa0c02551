// A conversation with one model: messages, the model's chat template, and a context whose
// cache is reused from turn to turn (only the new part of the prompt is evaluated).
//
// Context shift: when the rendered conversation plus room for an answer no longer fits
// in the context, the oldest exchanges (never the system prompt) are dropped until it
// does; a single message too long for the context is an error.
// Thread safety: one thread drives a session; cancel may be set from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "engine/chat_template.h"
#include "engine/generator.h"
#include "engine/model.h"

namespace hearth::app {

struct ChatOptions {
  engine::ContextParams context;
  engine::GenerateParams generate;
  std::string system_prompt;  // empty: the template's own default
};

class ChatSession {
 public:
  static Expected<std::unique_ptr<ChatSession>> create(const engine::Model& model, const ChatOptions& options);

  // Adds the user's message, generates the answer (streamed to on_text) and adds it.
  Expected<engine::GenerateResult> send(const std::string& user_text, const engine::TextCallback& on_text,
                                        const std::atomic<bool>* cancel = nullptr);
  void reset();  // forgets the conversation (keeps the system prompt)
  void set_system(std::string text);
  const std::vector<engine::ChatMessage>& messages() const { return messages_; }
  int64_t dropped_messages() const { return dropped_; }
  // The prompt text the template makes for the current messages (plus generation prompt).
  Expected<std::string> render_prompt() const;
  engine::Context& context() { return *ctx_; }

 private:
  ChatSession(const engine::Model& m, ChatOptions o) : model_(m), options_(std::move(o)) {}
  Expected<std::vector<int32_t>> tokenize_prompt() const;

  const engine::Model& model_;
  ChatOptions options_;
  engine::ChatTemplate template_;
  std::unique_ptr<engine::Context> ctx_;
  std::vector<engine::ChatMessage> messages_;
  int64_t dropped_ = 0;
};

}  // namespace hearth::app
