#include "app/pull.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "platform/secure_file.h"

namespace hearth::app {
namespace {

constexpr long kConnectTimeoutSeconds = 30;
constexpr long kStallSeconds =
    60; // abort when less than 1 byte/s arrives for this long
constexpr int kMaxAttempts =
    3; // a restart from zero after an ignored or refused Range

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Where one pull's bytes wait until their hash is known.
std::string part_path(const ModelStore &store, const std::string &sha256) {
  return store.root() + "/blobs/.pull-" + sha256 + ".part";
}

// The state of one HTTP request, shared with libcurl's callbacks.
struct Transfer {
  int fd = -1;
  uint64_t offset = 0;   // bytes of the .part before this response's body
  uint64_t received = 0; // body bytes written by this response
  Sha256 hash;           // of bytes [0, offset + received)
  int status = 0; // of the response being read (redirects pass through too)
  int64_t range_start = -1, content_length = -1;
  bool restarted = false; // truncated to zero because the server ignored Range
  bool mismatch =
      false;         // a 206 for another range: start over with a new request
  std::string error; // set before a callback aborts the transfer
  const PullOptions *options = nullptr;
  uint64_t last_report = 0;
};

bool starts_with_ci(std::string_view line, std::string_view prefix) {
  return line.size() >= prefix.size() &&
         lower(std::string(line.substr(0, prefix.size()))) == prefix;
}

int64_t parse_u63(std::string_view s) {
  while (!s.empty() && s.front() == ' ')
    s.remove_prefix(1);
  int64_t v = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > (INT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return i == 0 ? -1 : v;
}

Status check_space(const Transfer &t, uint64_t total) {
  if (total > t.options->max_bytes)
    return make_error(
        "the server says the file is {} bytes, over the {} GiB limit of a pull",
        total, t.options->max_bytes >> 30);
  struct statvfs vfs {};
  if (::fstatvfs(t.fd, &vfs) == 0) {
    const uint64_t free_bytes =
        static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (total - t.offset > free_bytes)
      return make_error(
          "not enough disk space: {} MiB more are needed, {} MiB are free",
          (total - t.offset) >> 20, free_bytes >> 20);
  }
  return Status::ok();
}

// Runs when a response's headers are complete (its blank line).
Status on_headers(Transfer &t) {
  if (t.status < 200 || t.status > 299)
    return Status::ok(); // a redirect, or an error
  if (t.offset > 0 && t.status == 206 &&
      t.range_start != static_cast<int64_t>(t.offset)) {
    t.mismatch = true;
    return make_error("the server sent a different range than asked");
  }
  if (t.offset > 0 &&
      t.status != 206) { // Range ignored: the whole file comes again
    if (::ftruncate(t.fd, 0) != 0 || ::lseek(t.fd, 0, SEEK_SET) != 0)
      return make_error("cannot restart the partial download: {}",
                        std::strerror(errno));
    t.offset = 0;
    t.hash = Sha256();
    t.restarted = true;
  }
  if (t.content_length >= 0)
    return check_space(t, t.offset + t.content_length);
  return Status::ok();
}

size_t header_cb(char *data, size_t size, size_t n, void *user) {
  auto &t = *static_cast<Transfer *>(user);
  const std::string_view line(data, size * n);
  if (starts_with_ci(line, "http/")) {
    const size_t sp = line.find(' ');
    t.status = sp == std::string_view::npos
                   ? 0
                   : static_cast<int>(parse_u63(line.substr(sp)));
    t.range_start = t.content_length = -1;
  } else if (starts_with_ci(line, "content-length:")) {
    t.content_length = parse_u63(line.substr(15));
  } else if (starts_with_ci(line, "content-range:")) {
    std::string_view v = line.substr(14);
    while (!v.empty() && v.front() == ' ')
      v.remove_prefix(1);
    if (starts_with_ci(v, "bytes "))
      t.range_start = parse_u63(v.substr(6));
  } else if (line == "\r\n" || line == "\n") {
    if (Status s = on_headers(t); !s) {
      t.error = s.error();
      return 0; // aborts the transfer
    }
  }
  return size * n;
}

size_t write_cb(char *data, size_t size, size_t n, void *user) {
  auto &t = *static_cast<Transfer *>(user);
  const size_t len = size * n;
  if (t.offset + t.received + len > t.options->max_bytes) {
    t.error = fmt::format("the download passed the {} GiB limit of a pull",
                          t.options->max_bytes >> 30);
    return 0;
  }
  for (size_t w = 0; w < len;) {
    const ssize_t k = ::write(t.fd, data + w, len - w);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      t.error =
          fmt::format("cannot write the download: {}", std::strerror(errno));
      // Keep the .part consistent with what was fully written.
      if (::ftruncate(t.fd, static_cast<off_t>(t.offset + t.received)) != 0)
        t.error += " (and cannot trim it)";
      return 0;
    }
    w += static_cast<size_t>(k);
  }
  t.hash.update(data, len);
  t.received += len;
  return len;
}

int progress_cb(void *user, curl_off_t total, curl_off_t now, curl_off_t,
                curl_off_t) {
  auto &t = *static_cast<Transfer *>(user);
  if (t.options->cancel && t.options->cancel->load())
    return 1;
  const uint64_t done = t.offset + t.received;
  if (t.options->progress && total > 0 &&
      (done - t.last_report >= (1u << 20) || now == total)) {
    t.options->progress(done, t.offset + static_cast<uint64_t>(total));
    t.last_report = done;
  }
  return 0;
}

// Hashes the first `size` bytes already in the .part.
Status hash_prefix(Transfer &t, uint64_t size, const Progress &progress) {
  std::vector<char> buf(1 << 20);
  for (uint64_t done = 0; done < size;) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    const ssize_t k = ::pread(t.fd, buf.data(), want, static_cast<off_t>(done));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return make_error("cannot read the partial download: {}",
                        std::strerror(errno));
    t.hash.update(buf.data(), static_cast<size_t>(k));
    done += static_cast<uint64_t>(k);
    if (progress)
      progress(done, size);
  }
  return Status::ok();
}

enum class Outcome { kDone, kRestart, kFailed };

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

// One GET of the URL, continuing the .part from t.offset.
Outcome fetch(Transfer &t, const std::string &part, std::string &error) {
  const PullOptions &o = *t.options;
  CURL *c = curl_easy_init();
  if (!c) {
    error = "libcurl could not start";
    return Outcome::kFailed;
  }
  char errbuf[CURL_ERROR_SIZE] = {};
  const std::string range = std::to_string(t.offset) + "-";
  curl_easy_setopt(c, CURLOPT_URL, o.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!o.cacert.empty())
    curl_easy_setopt(c, CURLOPT_CAINFO, o.cacert.c_str());
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  if (t.offset > 0)
    curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  const CURLcode rc = curl_easy_perform(c);
  long http = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
  curl_easy_cleanup(c);
  if (rc == CURLE_OK)
    return Outcome::kDone;

  const uint64_t have = t.offset + t.received;  // pull_model deletes an empty .part
  const std::string kept =
      have == 0 ? std::string()
                : fmt::format("; {} bytes are kept in {}: run the same command again to resume",
                              have, part);
  if (t.mismatch ||
      (rc == CURLE_HTTP_RETURNED_ERROR && http == 416 && t.offset > 0))
    return Outcome::kRestart;
  const std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  if (o.cancel && o.cancel->load())
    error = "interrupted" + kept;
  else if (!t.error.empty())
    error = t.error + kept;
  else if (rc == CURLE_PEER_FAILED_VERIFICATION ||
           rc == CURLE_SSL_CACERT_BADFILE)
    error = fmt::format("{}: the server's certificate could not be verified "
                        "({}); nothing was downloaded. If the "
                        "server uses a private certificate authority, pass its "
                        "certificate with --cacert FILE",
                        o.url, detail);
  else if (rc == CURLE_UNSUPPORTED_PROTOCOL)
    error = fmt::format("{}: refused: {} (hearth pull follows https:// only)",
                        o.url, detail);
  else if (rc == CURLE_HTTP_RETURNED_ERROR)
    error = fmt::format("{}: the server answered HTTP {}", o.url, http);
  else
    error = fmt::format("{}: download failed: {}{}", o.url, detail, kept);
  return Outcome::kFailed;
}

} // namespace

Expected<std::string> name_from_url(const std::string &url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = path.find("://");
  if (scheme != std::string::npos)
    path = path.substr(scheme + 3);
  const size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? "" : path.substr(slash + 1);
  if (lower(name).size() > 5 && lower(name).ends_with(".gguf"))
    name.resize(name.size() - 5);
  if (Status s = ModelStore::validate_name(name); !s)
    return make_error(
        "cannot take a model name from the URL ({}); give one with --name",
        s.error());
  return name;
}

Expected<PullResult> pull_model(ModelStore &store, const PullOptions &o) {
  if (!starts_with_ci(o.url, "https://"))
    return make_error("'{}' is not an https:// URL; hearth pull downloads over "
                      "HTTPS only, so that the server "
                      "is authenticated and the download private",
                      o.url.substr(0, 200));
  for (unsigned char ch : o.url)
    if (ch <= 0x20 || ch == 0x7f)
      return make_error("the URL contains a space or control character");
  const std::string want = lower(o.sha256);
  if (!is_sha256_hex(want))
    return make_error("--sha256 '{}' is not 64 hex digits",
                      o.sha256.substr(0, 80));
  PullResult result;
  if (o.name.empty()) {
    auto n = name_from_url(o.url);
    if (!n)
      return Error{n.error()};
    result.name = *n;
  } else {
    if (Status s = ModelStore::validate_name(o.name); !s)
      return Error{s.error()};
    result.name = o.name;
  }
  if (!o.cacert.empty() && ::access(o.cacert.c_str(), R_OK) != 0)
    return make_error("--cacert {}: cannot read: {}", o.cacert,
                      std::strerror(errno));
  if (Status s = crypto_init(); !s)
    return Error{s.error()};
  if (store.has(result.name)) { // nothing to fetch when the store has these
                                // bytes as NAME
    auto m = store.get(result.name);
    if (m && m->current().sha256 == want && !m->current().changed) {
      result.version = m->current();
      return result;
    }
  }
  if (Status s = platform::make_private_dir(store.root() + "/blobs"); !s)
    return Error{s.error()};

  const std::string part = part_path(store, want);
  Transfer t;
  t.options = &o;
  t.fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (t.fd < 0)
    return make_error("{}: cannot open: {}", part, std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{t.fd};
  if (::flock(t.fd, LOCK_EX | LOCK_NB) != 0)
    return make_error(
        "another hearth pull is writing {}; wait for it to finish", part);
  struct stat st {};
  if (::fstat(t.fd, &st) != 0)
    return make_error("{}: cannot stat: {}", part, std::strerror(errno));
  t.offset = static_cast<uint64_t>(st.st_size);
  if (t.offset > o.max_bytes && ::ftruncate(t.fd, 0) == 0)
    t.offset = 0;
  result.resumed_from = t.offset;
  if (Status s = hash_prefix(t, t.offset, nullptr); !s)
    return Error{s.error()};
  if (::lseek(t.fd, static_cast<off_t>(t.offset), SEEK_SET) < 0)
    return make_error("{}: cannot seek: {}", part, std::strerror(errno));

  CurlGlobal curl;
  std::string error;
  Outcome outcome = Outcome::kRestart;
  for (int attempt = 0; attempt < kMaxAttempts && outcome == Outcome::kRestart;
       ++attempt) {
    if (attempt > 0) { // the server could not continue: read it all again
      if (::ftruncate(t.fd, 0) != 0 || ::lseek(t.fd, 0, SEEK_SET) != 0)
        return make_error("{}: cannot truncate: {}", part,
                          std::strerror(errno));
      t.offset = 0;
      t.hash = Sha256();
      t.restarted = true;
    }
    t.received = 0;
    t.error.clear();
    t.mismatch = false;
    outcome = fetch(t, part, error);
  }
  result.restarted = t.restarted;
  if (outcome != Outcome::kDone) {
    if (t.offset + t.received == 0)
      ::unlink(part.c_str()); // nothing to resume
    else
      ::fsync(t.fd);
    return Error{outcome == Outcome::kRestart
                     ? "the server cannot continue the download"
                     : error};
  }
  if (::fsync(t.fd) != 0)
    return make_error("{}: fsync failed: {}", part, std::strerror(errno));
  const uint64_t size = t.offset + t.received;
  const std::string got = t.hash.hex_final();
  if (got != want) {
    ::unlink(part.c_str());
    return make_error("sha256 mismatch for {}: expected {}, got {} ({} bytes); "
                      "the download was deleted and "
                      "nothing entered the store",
                      o.url, want, got, size);
  }
  auto v = store.import(part, result.name, o.hash_progress, want);
  ::unlink(
      part.c_str()); // imported (the blob is a hard link or a copy), or refused
  if (!v)
    return make_error("{} (the download was deleted)", v.error());
  result.version = *v;
  return result;
}

} // namespace hearth::app
