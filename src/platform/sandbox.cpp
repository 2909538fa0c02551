#include "platform/sandbox.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "platform/seccomp.h"

namespace hearth::platform {
namespace {

// Kernel ABI (stable); Debian 12's headers predate ABI 3-6, so the newer bits are spelled here.
constexpr uint64_t kFsTruncate = 1ull << 14;        // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;        // ABI 5
constexpr uint64_t kNetBindTcp = 1ull << 0;         // ABI 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;      // ABI 4
constexpr uint64_t kScopeAbstractUnix = 1ull << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;        // ABI 6

struct RulesetAttr {  // struct landlock_ruleset_attr up to ABI 6
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
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

// The number of threads in this process, or 0 when /proc cannot tell.
int thread_count() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
  return 0;
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

SandboxPolicy chat_policy(const std::vector<std::string>& models, const std::string& data_dir) {
  SandboxPolicy p;
  p.read_only = models;
  p.read_only.insert(p.read_only.end(), {"/proc/self", "/proc/cpuinfo", "/proc/meminfo"});
  if (!data_dir.empty()) p.read_write = {data_dir};
  return p;
}

std::string SandboxState::missing() const {
  std::string m;
  auto add = [&m](const std::string& what) { m += (m.empty() ? "" : "; ") + what; };
  if (abi == 0)
    add("no Landlock in this kernel: files and TCP are not restricted by it");
  else if (abi < 4)
    add(fmt::format(
        "Landlock ABI {} has no network rules (needs 4): TCP connect/bind are not refused by it",
        abi));
  if (!seccomp) add("no seccomp filter: socket creation and execve are not refused");
  return m;
}

std::string SandboxState::describe() const {
  std::string d;
  if (fs_restricted)
    d = "Landlock ABI " + std::to_string(abi) + " (files: listed paths only" +
        (tcp_restricted ? ", TCP connect/bind refused" : ", TCP NOT restricted") +
        (scoped ? ", abstract unix sockets and signals scoped" : "") + ")";
  else
    d = "Landlock not applied";
  d += seccomp ? " + seccomp (no new sockets, no exec, no ptrace)" : ", seccomp not applied";
  return d;
}

SandboxState sandbox_support() {
  SandboxState st;
  st.abi = landlock_abi();
  st.fs_restricted = st.abi > 0;
  st.tcp_restricted = st.abi >= 4;
  st.scoped = st.abi >= 6;
  st.seccomp = seccomp_available();
  return st;
}

Expected<SandboxState> apply_landlock(const SandboxPolicy& policy) {
  SandboxState st;
  st.abi = landlock_abi();
  if (st.abi == 0)
    return make_error("Landlock is not available in this kernel (or disabled); cannot confine");
  if (const int n = thread_count(); n > 1)
    return make_error(
        "sandbox: {} threads are running; Landlock confines only the calling thread and its "
        "later threads, so it must be applied before any other thread starts",
        n);
  const uint64_t all_fs = fs_rights(st.abi);
  RulesetAttr attr{all_fs, 0, 0};
  size_t attr_size = sizeof(uint64_t);
  if (policy.deny_tcp && st.abi >= 4) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    attr_size = 2 * sizeof(uint64_t);
  }
  if (st.abi >= 6) {
    attr.scoped = kScopeAbstractUnix | kScopeSignal;
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
  st.scoped = attr.scoped != 0;
  return st;
}

Expected<SandboxState> confine_process(const SandboxPolicy& policy) {
  SandboxState st;
  if (landlock_abi() > 0) {
    auto ll = apply_landlock(policy);
    if (!ll) return ll;
    st = *ll;
  }
  if (seccomp_available()) {
    if (Status s = apply_seccomp_filter(); !s) return Error{s.error()};
    st.seccomp = true;
  }
  return st;
}

}  // namespace hearth::platform
