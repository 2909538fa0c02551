// Opening the vault from the command line: where the passphrase comes from, and the hook
// `hearth run` uses to keep finished turns.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "app/chat_session.h"
#include "app/vault.h"
#include "platform/status.h"

namespace hearth::cli {

// The vault in the data directory. The passphrase is $HEARTH_PASSPHRASE, else (for a
// vault that has one) asked on the terminal without echo, or with !may_prompt (a server)
// an error telling the user to set HEARTH_PASSPHRASE. Without `create`, a missing vault is
// an error (commands that only read must not leave a vault behind).
Expected<std::unique_ptr<app::Vault>> open_vault(bool create = false, bool may_prompt = true);

// How the vault and the audit log name a model argument: "sha256:HEX" when it comes from
// the store, else "file:NAME" (never hashed here: too slow).
std::string model_label(const std::string& model_arg);

// A new passphrase: $HEARTH_NEW_PASSPHRASE, else asked twice on the terminal. Empty
// means "no passphrase" (a key file).
Expected<std::string> ask_new_passphrase();

// Stores each finished turn of a chat; failures are reported on stderr and the chat goes on.
class HistoryHook {
 public:
  // Opens the vault (before the model loads, so a wrong passphrase fails fast).
  static Expected<std::unique_ptr<HistoryHook>> open();
  // Records which model is used: by hash when it comes from the store, else by file name.
  void model_loaded(const std::string& model_arg);
  void store_turn(const app::ChatSession& chat);
  // Records an event (no user content) in the audit log; failures become a warning.
  void audit_event(const std::string& event, const nlohmann::json& details);
  void new_conversation() {
    if (recorder_) recorder_->new_conversation();
  }

 private:
  std::unique_ptr<app::Vault> vault_;
  std::unique_ptr<app::TurnRecorder> recorder_;
};

}  // namespace hearth::cli
