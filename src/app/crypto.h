// Small wrappers over libsodium used by the model store, the vault and the audit log.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "platform/status.h"

namespace hearth::app {

// sodium_init(), once per process; an error if libsodium cannot start (no entropy source).
Status crypto_init();

std::string to_hex(const void* data, size_t n);
inline std::string to_hex(std::string_view s) { return to_hex(s.data(), s.size()); }
// Decodes lowercase or uppercase hex; an error on odd length or a non-hex character.
Expected<std::string> from_hex(std::string_view hex);
// True when s is exactly 64 lowercase hex digits (a SHA-256 as Hearth writes it).
bool is_sha256_hex(std::string_view s);

// Streaming SHA-256.
class Sha256 {
 public:
  Sha256() { crypto_hash_sha256_init(&state_); }
  void update(const void* data, size_t n) {
    crypto_hash_sha256_update(&state_, static_cast<const unsigned char*>(data), n);
  }
  std::string hex_final();  // 64 lowercase hex digits

 private:
  crypto_hash_sha256_state state_;
};

std::string sha256_hex(std::string_view data);

// Called with bytes done so far and the total, every few MB and at the end.
using Progress = std::function<void(uint64_t done, uint64_t total)>;

// SHA-256 of a file, read in 1 MiB chunks.
Expected<std::string> sha256_file(const std::string& path, const Progress& progress = nullptr);

}  // namespace hearth::app
