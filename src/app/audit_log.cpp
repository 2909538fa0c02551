#include "app/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "app/crypto.h"
#include "platform/clock.h"
#include "platform/secure_file.h"

namespace hearth::app {
using nlohmann::json;

namespace {

const std::string kZeroHash(64, '0');

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

}  // namespace

AuditLog::AuditLog(std::string path, const Key& key) : path_(std::move(path)), key_(key) {}

AuditLog::~AuditLog() { sodium_memzero(key_.data(), key_.size()); }

std::string AuditLog::mac_of(const json& entry) const {
  const std::string body = entry.dump();
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256(mac, reinterpret_cast<const unsigned char*>(body.data()), body.size(),
                         key_.data());
  return to_hex(mac, sizeof mac);
}

Expected<AuditAnchor> AuditLog::append(const std::string& event, const json& details) {
  if (Status s = crypto_init(); !s) return Error{s.error()};
  const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error("{}: cannot open the audit log: {}", path_, std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }  // also releases the flock
  } closer{fd};
  if (::flock(fd, LOCK_EX) != 0)
    return make_error("{}: cannot lock: {}", path_, std::strerror(errno));

  // The last complete line gives seq and prev; entries are short, so the tail suffices.
  struct stat st {};
  ::fstat(fd, &st);
  const off_t size = st.st_size;
  const off_t from = size > 65536 ? size - 65536 : 0;
  std::string tail(static_cast<size_t>(size - from), '\0');
  if (!tail.empty() &&
      ::pread(fd, tail.data(), tail.size(), from) != static_cast<ssize_t>(tail.size()))
    return make_error("{}: cannot read: {}", path_, std::strerror(errno));
  if (!tail.empty() && tail.back() != '\n')
    return make_error(
        "{}: the last line is incomplete (a crash while writing?); `hearth audit verify` shows "
        "where",
        path_);
  int64_t seq = 1;
  std::string prev = kZeroHash;
  if (!tail.empty()) {
    const size_t begin = tail.rfind('\n', tail.size() - 2);
    const std::string last =
        tail.substr(begin == std::string::npos ? 0 : begin + 1, std::string::npos);
    const std::string line = last.substr(0, last.size() - 1);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("seq") || !j["seq"].is_number_integer())
      return make_error(
          "{}: the last line is not an audit entry; `hearth audit verify` for details", path_);
    seq = j["seq"].get<int64_t>() + 1;
    prev = sha256_hex(line);
  }
  const std::string stamp = platform::utc_text(platform::unix_seconds(), "%Y-%m-%dT%H:%M:%SZ");
  json e{{"seq", seq}, {"time", stamp}, {"event", event}, {"details", details}, {"prev", prev}};
  e["mac"] = mac_of(e);
  const std::string line = e.dump();
  const std::string out = line + "\n";
  if (Status s = platform::write_all(fd, out, path_); !s) {
    // A disk that fills mid-line must not leave half a line: every later entry would be refused.
    (void)::ftruncate(fd, size);
    return Error{s.error()};
  }
  if (::fsync(fd) != 0) return make_error("{}: fsync failed: {}", path_, std::strerror(errno));
  return AuditAnchor{seq, sha256_hex(line)};
}

Expected<AuditVerifyResult> AuditLog::verify(const std::optional<AuditAnchor>& anchor) const {
  if (Status s = crypto_init(); !s) return Error{s.error()};
  AuditVerifyResult r;
  std::string text;
  if (::access(path_.c_str(), F_OK) == 0) {
    auto t = platform::read_file(path_, 256u << 20);
    if (!t) return Error{t.error()};
    text = std::move(*t);
  }
  auto fail = [&](int64_t line, std::string what) {
    r.ok = false;
    r.problem = fmt::format("line {}: {}", line, what);
    return r;
  };
  if (!text.empty() && text.back() != '\n')
    return fail(static_cast<int64_t>(split_lines(text).size()), "incomplete line");
  std::string prev = kZeroHash;
  int64_t n = 0;
  bool anchor_seen = !anchor || anchor->seq == 0;
  for (const std::string& line : split_lines(text)) {
    ++n;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(n, "not valid JSON (edited?)");
    if (!j.contains("mac") || !j["mac"].is_string()) return fail(n, "no MAC");
    const std::string mac = j["mac"].get<std::string>();
    j.erase("mac");
    const std::string expect = mac_of(j);
    if (mac.size() != expect.size() || sodium_memcmp(mac.data(), expect.data(), mac.size()) != 0)
      return fail(n, "MAC does not match (the entry was edited, or written under another key)");
    if (!j.contains("seq") || !j["seq"].is_number_integer() || j["seq"].get<int64_t>() != n)
      return fail(n, fmt::format("sequence number is not {} (an entry was deleted or moved)", n));
    if (!j.contains("prev") || !j["prev"].is_string() || j["prev"].get<std::string>() != prev)
      return fail(n,
                  "does not chain to the line before it (an entry was deleted, inserted or moved)");
    prev = sha256_hex(line);
    if (anchor && anchor->seq == n) {
      if (anchor->hash != prev) return fail(n, "differs from the entry the vault recorded");
      anchor_seen = true;
    }
  }
  r.entries = n;
  if (!anchor_seen)
    return fail(
        n + 1,
        fmt::format(
            "the log ends at entry {} but the vault recorded entry {}: newer entries were removed",
            n, anchor->seq));
  r.ok = true;
  return r;
}

Expected<std::vector<json>> AuditLog::entries() const {
  std::vector<json> out;
  if (::access(path_.c_str(), F_OK) != 0) return out;
  auto t = platform::read_file(path_, 256u << 20);
  if (!t) return Error{t.error()};
  for (const std::string& line : split_lines(*t)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace hearth::app
