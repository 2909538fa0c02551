#include "app/server_history.h"

#include <fmt/core.h>
#include <sodium.h>

#include <cstddef>
#include <cstdio>
#include <utility>

#include "app/server_routes.h"

namespace hearth::app {

ServerHistory::ServerHistory(std::unique_ptr<Vault> vault, std::string model)
    : vault_(std::move(vault)), model_(std::move(model)) {
  randombytes_buf(key_, sizeof key_);
}

// Each message as role, NUL, length, content: no two transcripts give the same bytes.
ServerHistory::Digest ServerHistory::digest(
    const std::vector<engine::ChatMessage>& messages) const {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key_, sizeof key_, 32);
  for (const engine::ChatMessage& m : messages) {
    const uint64_t n = m.content.size();
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(m.role.data()),
                              m.role.size() + 1);  // with its terminating NUL
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(&n), sizeof n);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(m.content.data()),
                              m.content.size());
  }
  Digest d(32, '\0');
  crypto_generichash_final(&st, reinterpret_cast<unsigned char*>(d.data()), d.size());
  return d;
}

void ServerHistory::remember(const Digest& d, int64_t id) {
  if (stored_.insert_or_assign(d, id).second) order_.push_back(d);
  while (order_.size() > kMaxTracked) {
    stored_.erase(order_.front());
    order_.pop_front();
  }
}

Status ServerHistory::audit(const std::string& event, const nlohmann::json& details) {
  std::lock_guard<std::mutex> lock(mutex_);
  return vault_->audit(event, details);
}

Status ServerHistory::store(const std::vector<engine::ChatMessage>& messages,
                            const std::string& answer) {
  size_t last_user = messages.size();
  for (size_t i = messages.size(); i-- > 0;) {
    if (messages[i].role == "user") {
      last_user = i;
      break;
    }
  }
  if (last_user == messages.size()) return Status::ok();
  const std::vector<engine::ChatMessage> before(messages.begin(),
                                                messages.begin() + static_cast<std::ptrdiff_t>(last_user));
  std::vector<engine::ChatMessage> transcript = messages;
  transcript.push_back({"assistant", answer});

  std::lock_guard lock(mutex_);
  const auto known = stored_.find(digest(before));
  int64_t id = 0;
  size_t first_new = 0;  // messages from here on go into the vault
  if (known != stored_.end() && !before.empty()) {
    id = known->second;
    first_new = last_user;
  } else {
    const bool has_system = !messages.empty() && messages.front().role == "system";
    const std::string& system = has_system ? messages.front().content : std::string();
    size_t first_user = 0;
    while (messages[first_user].role != "user") ++first_user;
    auto made = vault_->create_conversation(model_, messages[first_user].content, system);
    if (!made) return Status(Error{made.error()});
    id = *made;
    first_new = has_system ? 1 : 0;
    if (Status s = vault_->audit("conversation_stored", {{"id", id}, {"model", model_}}); !s)
      return s;
  }
  std::vector<std::pair<std::string, std::string>> rows;
  for (size_t i = first_new; i < transcript.size(); ++i)
    rows.emplace_back(transcript[i].role, transcript[i].content);
  if (Status s = vault_->append_messages(id, rows); !s) return s;
  remember(digest(transcript), id);
  return Status::ok();
}

void store_history(ServerState& state, const ParsedRequest& request,
                   const engine::GenerateResult& result) {
  const bool chat = request.kind == ApiKind::kOpenAiChat || request.kind == ApiKind::kOllamaChat;
  if (!state.options.history || !chat || result.reason == engine::StopReason::kCancelled) return;
  if (Status s = state.options.history->store(request.messages, result.text); !s)
    fmt::print(stderr, "hearth: warning: a chat was not saved to the history: {}\n", s.error());
}

}  // namespace hearth::app
