// Self-confinement, applied once start-up is done: Landlock (file system, TCP, scopes)
// and the seccomp filter of platform/seccomp.h.
//
// Landlock restricts this process and its future children for good: only the listed
// paths stay reachable (read-only or read-write); TCP connect() and bind() fail (kernel
// Landlock ABI 4+); connecting to abstract unix sockets and signalling processes outside
// the sandbox fail (ABI 6+). What is already open (mapped model, bound socket, terminal,
// the vault's database) keeps working. Landlock binds the calling thread and the threads
// it starts later, so it must be applied while the process has a single thread;
// apply_landlock() checks that. The seccomp filter then refuses socket creation and the
// calls a running model never needs, in every thread.
//
// A kernel may lack either part (or Landlock's network rules): confine_process() applies
// what the kernel has, and SandboxState::missing() says what is left out.
#pragma once

#include <string>
#include <vector>

#include "platform/status.h"

namespace hearth::platform {

// The Landlock ABI version the running kernel supports, or 0 when Landlock is absent or
// disabled. ABI 4+ also restricts TCP bind/connect; ABI 6+ scopes unix sockets and signals.
int landlock_abi();

struct SandboxPolicy {
  std::vector<std::string> read_only;   // directories or files: read (and map) only
  std::vector<std::string> read_write;  // directories: anything beneath them
  bool deny_tcp = true;                 // refuse new TCP connect/bind (ABI 4+)
};

// The policy of a running `hearth run` or `hearth serve`: `models` read-only, `data_dir`
// read-write (left out when empty), and the /proc files read after start-up (this
// process's own entries, which the sanitizers read too; CPU topology and free memory,
// read when thread pools and KV caches are sized). Nothing else.
SandboxPolicy chat_policy(const std::vector<std::string>& models, const std::string& data_dir);

struct SandboxState {
  int abi = 0;                  // the kernel's Landlock ABI, 0 when it has none
  bool fs_restricted = false;   // Landlock's file rules are in force
  bool tcp_restricted = false;  // Landlock refuses TCP connect/bind (ABI 4+)
  bool scoped = false;          // abstract unix sockets and signals scoped (ABI 6+)
  bool seccomp = false;         // the seccomp filter is in force
  // What a full confinement lacks, in one line ("" when nothing is missing).
  std::string missing() const;
  // The state in one line, for logs, the startup line and /health.
  std::string describe() const;
};

// The state confine_process() would reach on this kernel; applies nothing.
SandboxState sandbox_support();

// Applies Landlock only. An error when the kernel has no Landlock, a listed path cannot
// be opened, or more than one thread is running (the others would stay unconfined).
Expected<SandboxState> apply_landlock(const SandboxPolicy& policy);

// Hearth's sandbox: Landlock with `policy`, then the seccomp filter, each one when the
// kernel has it (what it lacks shows in missing()). An error when a part the kernel has
// cannot be applied; Landlock may then be in force without seccomp.
Expected<SandboxState> confine_process(const SandboxPolicy& policy);

}  // namespace hearth::platform
