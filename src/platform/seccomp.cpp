#include "platform/seccomp.h"

#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>

namespace hearth::platform {
namespace {

// The calls refused with EPERM (see the header for why each group).
constexpr const char* kDenied[] = {
    // network: no new sockets, connections or listeners
    "socket", "socketpair", "connect", "bind", "listen",
    // programs
    "execve", "execveat",
    // other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    // namespaces
    "unshare", "setns",
    // file system
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "quotactl", "name_to_handle_at", "open_by_handle_at",
    "fanotify_init",
    // kernel
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "reboot", "swapon", "swapoff", "acct", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "vhangup", "uselib"};

// clone() flags that make a new namespace. CLONE_NEWTIME (0x80) is left out: for clone()
// those bits are the exit signal; only clone3 and unshare take it, and both are refused.
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                        CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET};

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

Status check(int rc, const char* what) {
  if (rc == 0) return Status::ok();
  return make_error("seccomp: {} failed: {}", what, std::strerror(-rc));
}

}  // namespace

bool seccomp_available() {
  // The kernel answers this query only when it has filters (Linux 4.14+); an errno action
  // is what the policy uses.
  const uint32_t action = SECCOMP_RET_ERRNO;
  return ::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

Status apply_seccomp_filter() {
  if (!seccomp_available())
    return make_error("seccomp filters are not available in this kernel (or are disabled)");
  std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return make_error("seccomp: cannot create a filter (out of memory)");
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  // Only the native ABI is in the filter: any other fails as a bad architecture.
  Status s = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, eperm), "bad-arch action");
  if (s) s = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1), "no_new_privs");
  if (s) s = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1), "thread sync");
  for (const char* name : kDenied) {
    if (!s) break;
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return make_error("seccomp: unknown system call '{}'", name);
    s = check(seccomp_rule_add(ctx.get(), eperm, nr, 0), name);
  }
  for (const uint64_t flag : kNamespaceFlags)
    if (s)
      s = check(seccomp_rule_add(ctx.get(), eperm, SCMP_SYS(clone), 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)),
                "clone namespace flags");
  if (s)
    s = check(seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  if (s) s = check(seccomp_load(ctx.get()), "loading the filter");
  return s;
}

std::string seccomp_policy_summary() {
  return fmt::format(
      "seccomp refuses (EPERM) new sockets (socket, socketpair, connect, bind, listen), execve, "
      "ptrace, namespaces, mounts, kernel modules, bpf, perf_event_open, keyrings, io_uring, "
      "clock and host changes: {} calls, and any call through another ABI than x86_64",
      std::size(kDenied) + 2);  // + clone with CLONE_NEW*, + clone3
}

}  // namespace hearth::platform
