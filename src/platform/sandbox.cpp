#include "platform/sandbox.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace hearth::platform {
namespace {

// Kernel ABI (stable); Debian 12's headers predate ABI 3-5, so the newer bits are spelled here.
constexpr uint64_t kFsTruncate = 1ull << 14;    // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;    // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0;     // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;  // ABI 4

struct RulesetAttr {  // struct landlock_ruleset_attr up to ABI 4
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
};

struct PathBeneath {  // struct landlock_path_beneath_attr (packed in the kernel ABI)
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

constexpr uint64_t kFsRead =
    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_EXECUTE;

uint64_t fs_rights(int abi) {
  uint64_t all = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;  // ABI 1: bits 0..12
  if (abi >= 2) all |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) all |= kFsTruncate;
  if (abi >= 5) all |= kFsIoctlDev;
  return all;
}

}  // namespace

int landlock_abi() {
#ifdef SYS_landlock_create_ruleset
  const long abi =
      ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return abi > 0 ? static_cast<int>(abi) : 0;
#else
  return 0;
#endif
}

std::string SandboxState::describe() const {
  if (abi == 0) return "not confined: this kernel has no Landlock";
  return std::string("Landlock ABI ") + std::to_string(abi) + ": file system " +
         (fs_restricted ? "restricted" : "NOT restricted") + ", TCP connect/bind " +
         (tcp_restricted ? "refused" : "NOT restricted (needs ABI 4)") +
         "; socket creation not filtered (no seccomp)";
}

Expected<SandboxState> apply_landlock(const SandboxPolicy& policy) {
  SandboxState st;
  st.abi = landlock_abi();
  if (st.abi == 0)
    return make_error("Landlock is not available in this kernel (or disabled); cannot confine");
  const uint64_t all_fs = fs_rights(st.abi);
  RulesetAttr attr{all_fs, 0};
  size_t attr_size = sizeof(uint64_t);
  if (policy.deny_tcp && st.abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    attr_size = sizeof attr;
  }
  const int ruleset = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0));
  if (ruleset < 0) return make_error("landlock_create_ruleset failed: {}", std::strerror(errno));
  auto add = [&](const std::string& path, uint64_t access) -> Status {
    const int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) return make_error("sandbox: cannot open {}: {}", path, std::strerror(errno));
    // Directory-only rights cannot be granted on a file.
    struct stat sb {};
    if (::fstat(fd, &sb) == 0 && !S_ISDIR(sb.st_mode))
      access &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                LANDLOCK_ACCESS_FS_EXECUTE | kFsTruncate | kFsIoctlDev;
    PathBeneath pb{access & all_fs, fd};
    const long rc = ::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return make_error("sandbox: cannot allow {}: {}", path, std::strerror(err));
    return Status::ok();
  };
  Status s;
  for (const auto& p : policy.read_only)
    if (s) s = add(p, kFsRead);
  for (const auto& p : policy.read_write)
    if (s) s = add(p, all_fs);
  if (s && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    s = make_error("sandbox: prctl(NO_NEW_PRIVS) failed: {}", std::strerror(errno));
  if (s && ::syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
    s = make_error("sandbox: landlock_restrict_self failed: {}", std::strerror(errno));
  ::close(ruleset);
  if (!s) return Error{s.error()};
  st.fs_restricted = true;
  st.tcp_restricted = attr.handled_access_net != 0;
  return st;
}

}  // namespace hearth::platform
