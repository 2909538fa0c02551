// Confinement of a running chat (platform/sandbox.h): once the model is mapped and the
// vault opened, the process keeps read access to the model file only, read-write access
// to the data directory only, and cannot open TCP connections or bind ports.
#pragma once

#include <string>

#include "platform/status.h"

namespace hearth::cli {

class HistoryHook;

// Confines the process for `hearth run` with model argument `model_arg`. Call before any
// worker thread starts (Landlock binds the calling thread and its future children).
// Without Landlock: a one-line note on stderr when it is a terminal, or an error when
// `required`. Returns the state in one line, and records it in the audit log when
// `history` is given.
Expected<std::string> confine_chat(const std::string& model_arg, bool required,
                                   HistoryHook* history = nullptr);

}  // namespace hearth::cli
