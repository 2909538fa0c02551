// Files that are either wholly written or not at all, and private directories.
//
// write_file_atomic writes to a temporary file in the same directory, fsyncs it, renames
// it over the target and fsyncs the directory: a crash or a full disk leaves either the
// old file or the new one, never a half-written one.
#pragma once

#include <string>
#include <string_view>

#include "platform/status.h"

namespace hearth::platform {

// Writes `data` to `path` atomically with permission bits `mode` (e.g. 0600).
Status write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0600);

// Writes all of `data` to `fd` (retrying short writes and EINTR); `what` names the file in
// the error, which carries the system's reason (e.g. "No space left on device").
Status write_all(int fd, std::string_view data, const std::string& what);

// Reads a whole file (at most max_bytes).
Expected<std::string> read_file(const std::string& path, size_t max_bytes = 64u << 20);

// Creates `path` and missing parents with mode 0700 (existing directories are kept as they are).
Status make_private_dir(const std::string& path);

// fsync of a directory, so that a rename or a new name in it is durable.
Status fsync_dir(const std::string& dir);

}  // namespace hearth::platform
