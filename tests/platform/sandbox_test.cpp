// The Landlock policy, applied in a forked child: reads outside the allowed paths, writes to
// read-only paths and TCP connect all fail; allowed access still works.
#include "platform/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

namespace hearth::platform {
namespace {
namespace fs = std::filesystem;

// Child checks, one bit each; the child exits with the bits of the checks that failed.
enum : int {
  kApplyFailed = 1,
  kReadAllowedFailed = 2,
  kWriteAllowedFailed = 4,
  kWriteReadOnlyWorked = 8,
  kReadOutsideWorked = 16,
  kConnectWorked = 32,
};

TEST(Sandbox, LandlockConfinesFilesAndTcp) {
  const int abi = landlock_abi();
  if (abi == 0) GTEST_SKIP() << "no Landlock in this kernel";
  char tmpl[] = "/tmp/hearth-sandbox-XXXXXX";
  const std::string root = ::mkdtemp(tmpl);
  fs::create_directories(root + "/ro");
  fs::create_directories(root + "/rw");
  fs::create_directories(root + "/outside");
  std::ofstream(root + "/ro/model.gguf") << "weights";
  std::ofstream(root + "/outside/secret") << "secret";

  // A listener on loopback the child must not reach.
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int bad = 0;
    SandboxPolicy p;
    p.read_only = {root + "/ro"};
    p.read_write = {root + "/rw"};
    auto st = apply_landlock(p);
    if (!st) _exit(kApplyFailed);
    int fd = ::open((root + "/ro/model.gguf").c_str(), O_RDONLY);
    if (fd < 0)
      bad |= kReadAllowedFailed;
    else
      ::close(fd);
    fd = ::open((root + "/rw/vault.db").c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0)
      bad |= kWriteAllowedFailed;
    else
      ::close(fd);
    fd = ::open((root + "/ro/new").c_str(), O_RDWR | O_CREAT, 0600);
    if (fd >= 0) bad |= kWriteReadOnlyWorked;
    fd = ::open((root + "/outside/secret").c_str(), O_RDONLY);
    if (fd >= 0) bad |= kReadOutsideWorked;
    fd = ::open("/etc/hostname", O_RDONLY);
    if (fd >= 0) bad |= kReadOutsideWorked;
    if (st->tcp_restricted) {
      const int c = ::socket(AF_INET, SOCK_STREAM, 0);
      if (c >= 0 && ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
        bad |= kConnectWorked;
    }
    _exit(bad);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(lfd);
  fs::remove_all(root);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "failed checks (bits): " << WEXITSTATUS(status) << " (Landlock ABI " << abi << ")";
  if (abi < 4) std::printf("[ ABI %d: TCP not restricted by this kernel; not tested ]\n", abi);
}

TEST(Sandbox, WithoutTheSandboxTheSameChecksSucceed) {
  // The control: the child's checks are able to fail, i.e. outside paths are readable here.
  EXPECT_EQ(::access("/etc/hostname", R_OK) == 0 || ::access("/etc/passwd", R_OK) == 0, true);
}

TEST(Sandbox, MissingPathIsAnError) {
  if (landlock_abi() == 0) GTEST_SKIP() << "no Landlock in this kernel";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SandboxPolicy p;
    p.read_only = {"/nonexistent/hearth/path"};
    auto st = apply_landlock(p);
    _exit(!st && st.error().find("/nonexistent/hearth/path") != std::string::npos ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace hearth::platform
