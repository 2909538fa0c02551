// Self-confinement with Landlock (file system and TCP), applied once start-up is done.
//
// apply_landlock() restricts this process and its future children for good: only the
// listed paths stay reachable (read-only or read-write), and with deny_tcp, TCP connect()
// and bind() fail (kernel Landlock ABI 4+). What is already open (mapped model, bound
// socket, terminal) keeps working. Not covered: UDP and unix sockets, socket creation
// (that needs seccomp, which Hearth does not use yet).
#pragma once

#include <string>
#include <vector>

#include "platform/status.h"

namespace hearth::platform {

// The Landlock ABI version the running kernel supports, or 0 when Landlock is absent or
// disabled. ABI 4+ also restricts TCP bind/connect.
int landlock_abi();

struct SandboxPolicy {
  std::vector<std::string> read_only;   // directories or files: read (and map) only
  std::vector<std::string> read_write;  // directories: anything beneath them
  bool deny_tcp = true;                 // refuse new TCP connect/bind (ABI 4+)
};

struct SandboxState {
  int abi = 0;
  bool fs_restricted = false;
  bool tcp_restricted = false;
  std::string describe() const;  // one line for logs and `hearth doctor`
};

// Confines the calling process (all its threads must be created after, or be ones that
// need no more access; Landlock applies to the calling thread and its future children,
// and to the whole process only when called before other threads start).
// An error when the kernel has no Landlock, or a listed path cannot be opened.
Expected<SandboxState> apply_landlock(const SandboxPolicy& policy);

}  // namespace hearth::platform
