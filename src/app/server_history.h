// hearth serve's history: each finished chat completion (OpenAI /v1/chat/completions and
// Ollama /api/chat) is stored, encrypted, in the vault (app/vault.h), as `hearth run` stores
// its turns; `hearth serve --no-history` keeps nothing (the server then has no
// ServerHistory at all).
//
// API clients send the whole conversation with every request. A request continues a
// conversation this server stored when its messages up to the last user message are
// exactly that conversation (its messages and the answer it got): then only the new user
// message and the answer are appended, so a chat page's thread stays one conversation.
// Otherwise a new conversation holds the system prompt (as the vault's system field), every
// other message of the request, and the answer. Which transcripts were stored is known by
// keyed BLAKE2b digests kept in memory (kMaxTracked, the oldest forgotten first), so a
// restarted server starts new conversations.
//
// The audit log records "conversation_stored" (id, model; never content) for each new
// conversation, like `hearth run`.
// Thread safety: store() may be called from any thread; mutex_ guards the vault (a Vault
// is used by one thread at a time) and the digests.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/vault.h"
#include "engine/chat_template.h"
#include "platform/status.h"

namespace hearth::app {

class ServerHistory {
 public:
  static constexpr size_t kMaxTracked = 4096;

  // model: how the vault names the model ("sha256:..." or "file:name").
  ServerHistory(std::unique_ptr<Vault> vault, std::string model);
  // Stores a chat's messages and its answer. Does nothing for a request without a user
  // message.
  Status store(const std::vector<engine::ChatMessage>& messages, const std::string& answer);
  // Records an event (no user content) in the vault's audit log.
  Status audit(const std::string& event, const nlohmann::json& details);

 private:
  using Digest = std::string;  // 32 bytes
  Digest digest(const std::vector<engine::ChatMessage>& messages) const;
  void remember(const Digest& d, int64_t id);

  std::mutex mutex_;
  std::unique_ptr<Vault> vault_;
  std::string model_;
  unsigned char key_[32];               // random per process: digests are of no use outside it
  std::map<Digest, int64_t> stored_;    // transcript digest -> conversation id
  std::deque<Digest> order_;            // digests in stored_, oldest first
};

}  // namespace hearth::app
