#include "app/crypto.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace hearth::app {

Status crypto_init() {
  static const int rc = sodium_init();  // thread-safe, once
  if (rc < 0) return make_error("libsodium failed to initialise (no source of randomness?)");
  return Status::ok();
}

std::string to_hex(const void* data, size_t n) {
  static const char* const kDigits = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

Expected<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2) return make_error("hex string of odd length {}", hex.size());
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return make_error("not a hex digit at position {}", 2 * i + (hi < 0 ? 0 : 1));
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string Sha256::hex_final() {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state_, out);
  return to_hex(out, sizeof out);
}

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex_final();
}

Expected<std::string> sha256_file(const std::string& path, const Progress& progress) {
  if (Status s = crypto_init(); !s) return Error{s.error()};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const uint64_t total = static_cast<uint64_t>(st.st_size);
  std::vector<unsigned char> buf(1 << 20);
  Sha256 h;
  uint64_t done = 0, last_report = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return make_error("{}: read failed after {} bytes: {}", path, done, std::strerror(err));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
    if (progress && done - last_report >= (8u << 20)) {
      progress(done, total);
      last_report = done;
    }
  }
  ::close(fd);
  if (progress) progress(done, total);
  return h.hex_final();
}

}  // namespace hearth::app
