#include "app/server_auth.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "app/paths.h"
#include "platform/secure_file.h"

namespace hearth::app {
namespace {

constexpr size_t kKeyBytes = 32;

bool is_hex_key(std::string_view s) {
  if (s.size() != 2 * kKeyBytes) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

Expected<std::string> write_new_key() {
  auto key = generate_api_key();
  if (!key) return key;
  if (Status s = platform::make_private_dir(data_dir()); !s) return Error{s.error()};
  if (Status s = platform::write_file_atomic(api_key_path(), *key + "\n", 0600); !s)
    return Error{s.error()};
  return key;
}

// An IPv4 dotted quad or a bracketed IPv6 literal: no DNS name, so no rebinding.
bool is_ip_literal(std::string_view name) {
  if (name.size() >= 3 && name.front() == '[' && name.back() == ']') {
    for (char c : name.substr(1, name.size() - 2))
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    return true;
  }
  int dots = 0, digits = 0;
  for (char c : name) {
    if (c == '.') {
      if (digits == 0) return false;
      ++dots;
      digits = 0;
    } else if (c >= '0' && c <= '9' && digits < 3) {
      ++digits;
    } else {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

}  // namespace

std::string api_key_path() { return data_dir() + "/api_key"; }

Expected<std::string> generate_api_key() {
  unsigned char bytes[kKeyBytes];
  size_t got = 0;
  while (got < kKeyBytes) {
    const ssize_t n = ::getrandom(bytes + got, kKeyBytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("getrandom failed: {}", std::strerror(errno));
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key;
  for (unsigned char b : bytes) {
    key += kHex[b >> 4];
    key += kHex[b & 15];
  }
  return key;
}

Expected<std::string> read_api_key() {
  const std::string path = api_key_path();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return make_error("{}: no API key yet; `hearth serve` or `hearth key rotate` creates one",
                        path);
    return make_error("{}: {}", path, std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0)
    return make_error(
        "{}: readable by other users (mode {:o}); run `chmod 600 {}` or `hearth key rotate`", path,
        st.st_mode & 0777, path);
  auto text = platform::read_file(path, 4096);
  if (!text) return text;
  const std::string_view key = trim(*text);
  if (!is_hex_key(key))
    return make_error(
        "{}: not a Hearth API key (64 hex digits expected); `hearth key rotate` writes a new one",
        path);
  return std::string(key);
}

Expected<std::string> load_or_create_api_key() {
  struct stat st {};
  if (::stat(api_key_path().c_str(), &st) == 0) return read_api_key();
  return write_new_key();
}

Expected<std::string> rotate_api_key() { return write_new_key(); }

bool bearer_matches(std::string_view authorization, std::string_view key) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (key.empty() || authorization.size() < kPrefix.size()) return false;
  for (size_t i = 0; i < kPrefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kPrefix[i])))
      return false;
  std::string_view given = authorization.substr(kPrefix.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  if (given.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

bool is_loopback_address(std::string_view addr) {
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']')
    addr = addr.substr(1, addr.size() - 2);
  if (addr == "localhost" || addr == "::1") return true;
  if (addr.substr(0, 4) != "127.") return false;
  // 127.a.b.c with decimal octets.
  int dots = 0;
  for (char c : addr.substr(4)) {
    if (c == '.')
      ++dots;
    else if (c < '0' || c > '9')
      return false;
  }
  return dots == 2;
}

bool host_allowed(std::string_view host, std::string_view bound_address) {
  // Strip ":port" (digits) after the name; an IPv6 literal keeps its brackets.
  std::string_view name = host;
  const size_t colon = host.rfind(':');
  const size_t bracket = host.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    const std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port)
      if (c < '0' || c > '9') return false;
    name = host.substr(0, colon);
  }
  if (name.empty()) return false;
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "localhost" || is_ip_literal(lower)) return true;
  std::string bound(bound_address);
  for (char& c : bound) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == bound;
}

}  // namespace hearth::app
