// Confinement of a running chat or server (platform/sandbox.h): once the model is mapped,
// the port bound and the vault opened, the process keeps read access to the model file,
// read-write access to the data directory and nothing else, cannot open TCP connections
// or bind ports, and cannot create sockets or start programs (seccomp).
// `hearth pull`, the one command that connects, never calls this.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "platform/sandbox.h"
#include "platform/status.h"

namespace hearth::cli {

// Confines the process for a command serving model argument `model_arg`. Call while the
// process has a single thread (Landlock binds the calling thread and its later threads).
// The sandbox is required when `required` (--require-sandbox) or the config file says
// require_sandbox = true: then what this kernel lacks, or a failure to apply, is an error;
// otherwise it is said in one line on stderr and the command goes on (and the state says
// what is in force).
Expected<platform::SandboxState> confine(const std::string& model_arg, bool required);

// The state as the audit log's "sandbox" event records it (no paths, no content).
nlohmann::json sandbox_audit(const platform::SandboxState& state);

}  // namespace hearth::cli
