// The model store: GGUF files kept by content hash, with a manifest per name.
//
// Layout under the data directory (app/paths.h):
//   blobs/sha256-<hex>        the model bytes (a hard link to the imported file, or a copy)
//   manifests/<name>.json     {"name", "versions": [...]}; the last version is the current one
//   manifests/<name>.sig      signatures of its versions (app/signing.h)
//   blobs/.import-*, blobs/.pull-<sha256>.part   temporary files (import, `hearth pull`)
//
// Invariants:
// - A manifest's blob is always "blobs/sha256-<its sha256>"; a manifest naming anything
//   else (a path outside the store, "..", another hash) is rejected when read.
// - Names are 1..64 characters of [A-Za-z0-9._+-], not starting with '.'.
// - A version whose blob no longer hashes to its sha256 is marked "changed" and refuses
//   to load until `verify` finds the recorded hash again.
// - Loading checks the blob's size and mtime against those recorded at the last hash;
//   when either differs the blob is hashed again before it may load.
// - Manifests are written atomically (temp file, fsync, rename); a blob enters blobs/
//   only under its final name after its bytes were hashed.
// Thread safety: none; one process at a time is expected to change the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app/crypto.h"
#include "platform/status.h"

namespace hearth::app {

struct ModelVersion {
  int version = 1;
  std::string sha256;  // 64 lowercase hex digits
  uint64_t size = 0;   // bytes
  std::string architecture, quantization;
  std::string source;       // the path it was imported from
  int64_t imported_at = 0;  // unix seconds
  int64_t verified_at = 0;  // unix seconds of the last successful hash
  int64_t mtime_ns = 0;     // blob mtime when last hashed
  bool changed = false;     // the blob no longer matches sha256
};

struct ModelManifest {
  std::string name;
  std::vector<ModelVersion> versions;  // oldest first; back() is current
  const ModelVersion& current() const { return versions.back(); }
};

struct VerifyReport {
  std::string name;
  ModelVersion version;
  bool ok = false;
  std::string actual_sha256;  // what the blob hashes to now ("" if unreadable)
  std::string detail;
};

class ModelStore {
 public:
  explicit ModelStore(std::string data_dir);

  static Status validate_name(const std::string& name);

  // Checks that `file` is a GGUF model Hearth can load, hashes it and adds it as NAME's
  // new current version (keeping older versions). Re-importing the current bytes adds nothing.
  // With `expected_sha256`, bytes that hash to anything else never enter the store.
  Expected<ModelVersion> import(const std::string& file, const std::string& name,
                                const Progress& progress = nullptr,
                                const std::string& expected_sha256 = "");
  Expected<std::vector<ModelManifest>> list() const;
  bool has(const std::string& name) const;
  Expected<ModelManifest> get(const std::string& name) const;
  // Removes NAME, every version and their signatures; blobs no other manifest uses are deleted.
  Status remove(const std::string& name);
  // Drops NAME's current version and makes the previous one current.
  Expected<ModelVersion> rollback(const std::string& name);
  // Re-hashes NAME's current version and records the result.
  Expected<VerifyReport> verify(const std::string& name, const Progress& progress = nullptr);
  // The blob path of NAME's current version, once it is known to match its hash.
  Expected<std::string> path_for_load(const std::string& name, const Progress& progress = nullptr);
  // The sha256 of a blob path inside this store, or nullopt for any other path.
  std::optional<std::string> hash_of_blob_path(const std::string& path) const;

  std::string blob_path(const std::string& sha256) const;
  std::string signature_path(const std::string& name) const;
  const std::string& root() const { return root_; }

 private:
  std::string manifest_path(const std::string& name) const;
  Status save(const ModelManifest& m) const;
  Expected<ModelManifest> load_manifest(const std::string& path, const std::string& name) const;
  Status drop_blob_if_unused(const std::string& sha256) const;
  Expected<VerifyReport> rehash(ModelManifest& m, const Progress& progress);

  std::string root_;
};

}  // namespace hearth::app
