// The audit log: an append-only file of JSON lines recording what happened to the user's
// data, never the data itself (no message text, titles or prompts).
//
// Each line is one object with keys seq, time, event, details, prev, mac:
//   seq   1, 2, 3, ... with no gaps
//   prev  SHA-256 (hex) of the previous line's bytes; 64 zeros for the first line
//   mac   HMAC-SHA-256 (crypto_auth_hmacsha256, hex) under the audit key, over the line's
//         object without "mac", serialized with sorted keys and no spaces
// Editing a byte breaks its MAC; deleting or reordering lines breaks seq/prev; dropping the
// newest lines is caught against an anchor (seq + line hash) the vault keeps in its database.
// The audit key is derived from the vault's data key (crypto_kdf), so only the key holder
// can write entries that verify.
// Thread/process safety: append holds an exclusive flock on the file while it reads the
// last line and writes the new one.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "platform/status.h"

namespace hearth::app {

struct AuditAnchor {
  int64_t seq = 0;   // 0: empty log
  std::string hash;  // SHA-256 hex of line seq
};

struct AuditVerifyResult {
  bool ok = false;
  int64_t entries = 0;
  std::string problem;  // first problem found, with its line number
};

class AuditLog {
 public:
  using Key = std::array<unsigned char, 32>;
  AuditLog(std::string path, const Key& key);
  ~AuditLog();

  // Appends one entry (details must hold no user content); returns the new anchor.
  Expected<AuditAnchor> append(const std::string& event, const nlohmann::json& details);
  // Checks every line; with an anchor, also that the log still reaches it unchanged.
  Expected<AuditVerifyResult> verify(const std::optional<AuditAnchor>& anchor = std::nullopt) const;
  // The entries, parsed (for `hearth audit show`); unparsable lines are skipped.
  Expected<std::vector<nlohmann::json>> entries() const;
  const std::string& path() const { return path_; }

 private:
  std::string mac_of(const nlohmann::json& entry_without_mac) const;
  std::string path_;
  Key key_;
};

}  // namespace hearth::app
