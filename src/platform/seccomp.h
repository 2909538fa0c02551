// The system-call filter of a confined Hearth process (seccomp, built with libseccomp),
// applied once start-up is done: the model is mapped, the port bound, the vault open.
//
// Policy (x86_64). Everything not listed is allowed; a listed call fails with EPERM (it
// does not kill), so the caller sees an ordinary error it can report:
//   network     socket, socketpair, connect, bind, listen. What was made before keeps
//               working: accept/accept4 on the bound socket, read/write, send*/recv*,
//               shutdown, get/setsockopt, poll/epoll/select on existing descriptors.
//   programs    execve, execveat.
//   processes   ptrace, process_vm_readv/writev, process_madvise, pidfd_getfd, kcmp.
//   namespaces  unshare, setns, and clone with any CLONE_NEW* flag. clone3 fails with
//               ENOSYS instead (its flags live in memory a filter cannot read), so the C
//               library falls back to clone, whose flags the filter checks.
//   file system mount, umount2, pivot_root, chroot, the new mount API (open_tree,
//               move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr), quotactl,
//               name_to_handle_at, open_by_handle_at, fanotify_init.
//   kernel      kexec_load, kexec_file_load, init_module, finit_module, delete_module,
//               bpf, perf_event_open, keyctl, add_key, request_key, userfaultfd,
//               io_uring_setup/enter/register (io_uring could open and connect sockets
//               without the calls above), reboot, swapon, swapoff, acct, syslog,
//               settimeofday, clock_settime, clock_adjtime, adjtimex, sethostname,
//               setdomainname, iopl, ioperm, vhangup, uselib.
//   other ABIs  a call made through another ABI (i386 `int 0x80`, x32) fails with EPERM
//               whatever its number: the filter is written for x86_64 system-call numbers.
// Allowed, because a running `hearth run` or `hearth serve` needs them: threads (clone,
// futex, set_robust_list, rseq), memory (mmap, mprotect, madvise, brk), file I/O beneath
// the paths Landlock leaves open (open, pread/pwrite, fsync, fcntl locks, unlink, rename:
// SQLite), signals, getrandom, clocks, sched_*, the sanitizers' own calls (sigaltstack,
// madvise, /proc/self reads). The filter is inherited by every thread and child, and
// cannot be removed; it sets no_new_privs.
#pragma once

#include <string>

#include "platform/status.h"

namespace hearth::platform {

// True when the kernel supports seccomp filters that return an errno.
bool seccomp_available();

// Loads the filter above into the calling process, all its threads included (TSYNC).
// An error when the kernel has no seccomp filters or refuses the filter.
Status apply_seccomp_filter();

// The policy in one line (for `hearth doctor` and logs).
std::string seccomp_policy_summary();

}  // namespace hearth::platform
