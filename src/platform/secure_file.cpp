#include "platform/secure_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

namespace hearth::platform {
namespace fs = std::filesystem;

namespace {

std::string dir_of(const std::string& path) {
  const fs::path p(path);
  return p.has_parent_path() ? p.parent_path().string() : std::string(".");
}

}  // namespace

Status write_all(int fd, std::string_view data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("{}: write failed: {}", what, std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_error("{}: cannot open directory: {}", dir, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return make_error("{}: fsync failed: {}", dir, std::strerror(err));
  return Status::ok();
}

Status write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
  const std::string tmp =
      path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return make_error("{}: cannot create: {}", tmp, std::strerror(errno));
  // Errors name the target, not the temporary file, which is removed.
  Status s = write_all(fd, data, path);
  if (s && ::fchmod(fd, mode) != 0)
    s = make_error("{}: chmod failed: {}", path, std::strerror(errno));
  if (s && ::fsync(fd) != 0) s = make_error("{}: fsync failed: {}", path, std::strerror(errno));
  if (::close(fd) != 0 && s) s = make_error("{}: close failed: {}", path, std::strerror(errno));
  if (s && ::rename(tmp.c_str(), path.c_str()) != 0)
    s = make_error("{}: rename failed: {}", path, std::strerror(errno));
  if (!s) {
    ::unlink(tmp.c_str());
    return make_error("{} (nothing was written; a previous file of that name is unchanged)",
                      s.error());
  }
  return fsync_dir(dir_of(path));
}

Expected<std::string> read_file(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return make_error("{}: read failed: {}", path, std::strerror(err));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      return make_error("{}: larger than {} bytes; refusing to read it", path, max_bytes);
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status make_private_dir(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return Status::ok();
  const fs::path p(path);
  if (p.has_parent_path() && p.parent_path() != p) {
    if (Status s = make_private_dir(p.parent_path().string()); !s) return s;
  }
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error("{}: cannot create directory: {}", path, std::strerror(errno));
  return Status::ok();
}

}  // namespace hearth::platform
