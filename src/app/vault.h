// The vault: the user's conversations, encrypted at rest in an SQLite database.
//
// Files in the data directory: vault.db (+ -wal, -shm), vault.key (only when no passphrase
// is set), audit.log (app/audit_log.h).
//
// Keys (envelope encryption):
//   data key   32 random bytes, made once; never stored in the clear
//   KEK        Argon2id(passphrase, salt) (crypto_pwhash, INTERACTIVE limits), or the 32
//              bytes of vault.key (mode 0600) when the user has no passphrase
//   meta.wrapped_key = nonce || XChaCha20-Poly1305(KEK, data key, ad="hearth-vault/v1/data-key")
//   content key = kdf(data key, 1, "hvault01"); audit key = kdf(data key, 2, "haudit01")
// Changing the passphrase re-wraps the data key only.
//
// Records: every piece of user content (title, system prompt, message text) is stored as
// nonce(24) || XChaCha20-Poly1305(content key, text, ad) with a fresh random nonce and
// ad = "hearth-vault/v1/<table>/<field>/<conversation id>/<message index>/<role>", so a
// ciphertext moved to another row, field or conversation fails to decrypt.
//
// Invariants:
// - Nothing is written before the data key was unwrapped (a wrong passphrase writes nothing).
// - One turn (user + assistant message) is one transaction; WAL mode with synchronous=FULL,
//   so a killed process loses at most the turn in flight.
// - secure_delete=ON; forget() then checkpoints (TRUNCATE) and VACUUMs, so deleted records
//   leave no bytes in vault.db or vault.db-wal.
// - Conversation ids are never reused (AUTOINCREMENT), so associated data stays unique.
// - Every change is recorded in the audit log, and the newest entry's hash is kept in meta.
//
// Test-only: HEARTH_TEST_WEAK_KDF=1 makes new passphrase wraps use Argon2id's minimum
// limits so tests run fast. Never set it for real use.
// Thread safety: a Vault is used by one thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "app/audit_log.h"
#include "platform/status.h"

struct sqlite3;

namespace hearth::app {

enum class KeyHolding { kPassphrase, kKeyFile };

struct StoredMessage {
  int64_t index = 0;
  std::string role;
  int64_t created = 0;  // unix seconds
  std::string text;
};

struct Conversation {
  int64_t id = 0;
  int64_t created = 0, updated = 0;  // unix seconds
  std::string model;                 // the model's sha256 or file name (not user content)
  std::string title, system;
  int64_t n_messages = 0;
  std::vector<StoredMessage> messages;  // filled by get() and export
};

struct ForgetReport {
  int64_t conversations = 0, messages = 0;
  bool wal_cleared = true;  // false when another process kept the WAL busy
};

// What can be said about a vault without its key (for `hearth doctor`).
struct VaultInfo {
  bool exists = false;
  KeyHolding holding = KeyHolding::kKeyFile;
  uint64_t opslimit = 0, memlimit = 0;  // Argon2id limits (passphrase vaults)
  int64_t conversations = 0, messages = 0;
  std::string key_file;  // path of vault.key
  bool key_file_exists = false;
  unsigned key_file_mode = 0;  // permission bits
};

class Vault {
 public:
  // Opens the vault in `dir`, creating it (with a key file) when absent. An existing
  // vault with a passphrase needs `passphrase`; a wrong one is an error and writes nothing.
  static Expected<std::unique_ptr<Vault>> open(const std::string& dir,
                                               const std::optional<std::string>& passphrase);
  // How an existing vault's key is held, or nullopt when there is no vault in `dir`.
  static Expected<std::optional<KeyHolding>> probe(const std::string& dir);
  // Reads (never writes) what a vault reveals without its key.
  static Expected<VaultInfo> inspect(const std::string& dir);
  ~Vault();
  Vault(const Vault&) = delete;
  Vault& operator=(const Vault&) = delete;

  Expected<int64_t> create_conversation(const std::string& model, const std::string& title,
                                        const std::string& system);
  // Appends messages (role, text) to conversation `id` in one transaction.
  Status append_messages(int64_t id,
                         const std::vector<std::pair<std::string, std::string>>& messages);
  Expected<std::vector<Conversation>> list();  // titles only, newest first
  Expected<Conversation> get(int64_t id);
  // Every conversation with its messages, as JSON text in the documented export format.
  Expected<std::string> export_json();
  Expected<ForgetReport> forget(int64_t id);
  Expected<ForgetReport> forget_all();
  // Re-wraps the data key under a new passphrase; nullopt or empty: under a new key file.
  Status change_key(const std::optional<std::string>& new_passphrase);

  KeyHolding key_holding() const { return holding_; }
  const std::string& dir() const { return dir_; }
  std::string db_path() const { return dir_ + "/vault.db"; }
  // Records an event in the audit log (no user content in details) and anchors it.
  Status audit(const std::string& event, const nlohmann::json& details);
  Expected<AuditVerifyResult> verify_audit();
  AuditLog& audit_log() { return *audit_; }
  // PRAGMA integrity_check: "ok" or SQLite's report.
  Expected<std::string> integrity_check();

 private:
  Vault() = default;
  Status exec(const char* sql);
  Expected<std::string> seal(const std::string& text, const std::string& ad) const;
  Expected<std::string> unseal(const std::string& blob, const std::string& ad) const;
  Expected<ForgetReport> erase_where(const char* conv_sql, const char* msg_sql,
                                     std::optional<int64_t> id);
  Status set_meta(const std::string& key, const std::string& value);
  Expected<std::optional<std::string>> get_meta(const std::string& key);

  std::string dir_;
  sqlite3* db_ = nullptr;
  KeyHolding holding_ = KeyHolding::kKeyFile;
  std::array<unsigned char, 32> content_key_{};
  std::array<unsigned char, 32> data_key_{};
  std::unique_ptr<AuditLog> audit_;
};

// Writes the finished turns of one chat into the vault; a new conversation starts with the
// first turn after construction or new_conversation().
class TurnRecorder {
 public:
  TurnRecorder(Vault& vault, std::string model) : vault_(vault), model_(std::move(model)) {}
  Status record(const std::string& system, const std::string& user, const std::string& assistant);
  void new_conversation() { id_ = 0; }

 private:
  Vault& vault_;
  std::string model_;
  int64_t id_ = 0;
};

}  // namespace hearth::app
