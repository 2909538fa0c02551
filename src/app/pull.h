// `hearth pull`: download a model over HTTPS into the store, the one outbound
// connection Hearth ever makes (and only when the user runs this command).
//
// - HTTPS only (libcurl; redirects only to https:// too); certificates are
// verified against
//   the system CAs or `cacert`.
// - The bytes go to STORE/blobs/.pull-<sha256>.part. An interrupted download
// (Ctrl-C, a
//   dropped connection) leaves that file; the next pull of the same hash
//   re-hashes it and asks for the rest with a Range request. A server that
//   ignores Range (200 instead of 206) or refuses it (416) is read again from
//   the start.
// - The file enters the store (ModelStore::import, with its GGUF checks) only
// when its
//   SHA-256 equals the expected one; otherwise the .part is deleted and nothing
//   enters.
// Thread safety: one pull per store at a time; `cancel` may be set from a
// signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "app/crypto.h"
#include "app/model_store.h"
#include "platform/status.h"

namespace hearth::app {

inline constexpr uint64_t kMaxPullBytes = uint64_t{256} << 30; // 256 GiB

struct PullOptions {
  std::string url;    // must be https://
  std::string sha256; // expected, 64 hex digits (either case)
  std::string name;   // store name; "" = the URL's file name without .gguf
  std::string
      cacert; // PEM file of CA certificates to trust instead of the system's
  uint64_t max_bytes = kMaxPullBytes;
  Progress progress;      // bytes downloaded of the whole file
  Progress hash_progress; // the hash at import
  const std::atomic<bool> *cancel = nullptr; // set: stop, keep the .part
};

struct PullResult {
  std::string name;
  ModelVersion version;
  uint64_t resumed_from =
      0; // bytes already on disk when this pull started (0: fresh)
  bool restarted = false; // the server ignored or refused the Range request
};

// The store name a URL gives by default: its last path segment without query
// and ".gguf".
Expected<std::string> name_from_url(const std::string &url);

Expected<PullResult> pull_model(ModelStore &store, const PullOptions &options);

} // namespace hearth::app
