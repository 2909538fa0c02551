#include "app/model_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "engine/model.h"
#include "format/tensor_type.h"
#include "platform/clock.h"
#include "platform/secure_file.h"

namespace hearth::app {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxNameLength = 64;
constexpr const char* kBlobPrefix = "blobs/sha256-";

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// The dominant weight type: the type holding the most bytes among tensors of 2+ dims.
std::string quantization_of(const format::GgufFile& g) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& t : g.tensors())
    if (t.n_dims >= 2) bytes[std::string(format::type_name(t.type))] += t.n_bytes;
  std::string best = "unknown";
  uint64_t most = 0;
  for (const auto& [name, n] : bytes)
    if (n > most) most = n, best = name;
  return best;
}

json to_json(const ModelVersion& v) {
  return json{{"version", v.version},
              {"sha256", v.sha256},
              {"blob", kBlobPrefix + v.sha256},
              {"size", v.size},
              {"architecture", v.architecture},
              {"quantization", v.quantization},
              {"source", v.source},
              {"imported_at", v.imported_at},
              {"verified_at", v.verified_at},
              {"mtime_ns", v.mtime_ns},
              {"state", v.changed ? "changed" : "verified"}};
}

Expected<ModelVersion> version_from_json(const json& j, const std::string& where) {
  try {
    ModelVersion v;
    v.version = j.at("version").get<int>();
    v.sha256 = j.at("sha256").get<std::string>();
    if (!is_sha256_hex(v.sha256))
      return make_error("{}: sha256 '{}' is not 64 hex digits", where, v.sha256);
    const std::string blob = j.at("blob").get<std::string>();
    if (blob != kBlobPrefix + v.sha256)
      return make_error(
          "{}: blob '{}' is not this store's blob for its hash; refusing a manifest that points "
          "elsewhere",
          where, blob);
    v.size = j.at("size").get<uint64_t>();
    v.architecture = j.at("architecture").get<std::string>();
    v.quantization = j.at("quantization").get<std::string>();
    v.source = j.at("source").get<std::string>();
    v.imported_at = j.at("imported_at").get<int64_t>();
    v.verified_at = j.at("verified_at").get<int64_t>();
    v.mtime_ns = j.at("mtime_ns").get<int64_t>();
    const std::string state = j.at("state").get<std::string>();
    if (state != "verified" && state != "changed")
      return make_error("{}: unknown state '{}'", where, state);
    v.changed = state == "changed";
    return v;
  } catch (const json::exception& e) {
    return make_error("{}: malformed manifest entry: {}", where, e.what());
  }
}

// Copies src to dst (created exclusively) while hashing the bytes written; fsyncs dst.
Expected<std::string> copy_and_hash(const std::string& src, const std::string& dst,
                                    const Progress& progress) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return make_error("{}: cannot open: {}", src, std::strerror(errno));
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return make_error("{}: cannot create: {}", dst, std::strerror(err));
  }
  struct stat st {};
  ::fstat(in, &st);
  const uint64_t total = static_cast<uint64_t>(st.st_size);
  std::vector<char> buf(1 << 20);
  Sha256 h;
  uint64_t done = 0, last = 0;
  std::string error;
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = fmt::format("{}: read failed: {}", src, std::strerror(errno));
      break;
    }
    if (n == 0) break;
    for (ssize_t w = 0; w < n;) {
      const ssize_t k = ::write(out, buf.data() + w, static_cast<size_t>(n - w));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        error = fmt::format("{}: write failed: {}", dst, std::strerror(errno));
        break;
      }
      w += k;
    }
    if (!error.empty()) break;
    h.update(buf.data(), static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
    if (progress && done - last >= (8u << 20)) progress(done, total), last = done;
  }
  if (error.empty() && ::fsync(out) != 0)
    error = fmt::format("{}: fsync failed: {}", dst, std::strerror(errno));
  if (::close(out) != 0 && error.empty())
    error = fmt::format("{}: close failed: {}", dst, std::strerror(errno));
  ::close(in);
  if (!error.empty()) {
    ::unlink(dst.c_str());
    return Error{error};
  }
  if (progress) progress(done, total);
  return h.hex_final();
}

}  // namespace

ModelStore::ModelStore(std::string data_dir) : root_(std::move(data_dir)) {}

Status ModelStore::validate_name(const std::string& name) {
  if (name.empty()) return make_error("a model name cannot be empty");
  if (name.size() > kMaxNameLength)
    return make_error("model name '{}...' is too long ({} characters; at most {})",
                      name.substr(0, 16), name.size(), kMaxNameLength);
  if (name[0] == '.') return make_error("model name '{}' may not start with '.'", name);
  if (name.find("..") != std::string::npos)
    return make_error("model name '{}' may not contain '..'", name);
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '+';
    if (!ok)
      return make_error("model name '{}' contains '{}': use letters, digits and . _ - + only", name,
                        c == '/' ? std::string("/") : std::string(1, c));
  }
  return Status::ok();
}

std::string ModelStore::blob_path(const std::string& sha256) const {
  return root_ + "/" + kBlobPrefix + sha256;
}

std::string ModelStore::signature_path(const std::string& name) const {
  return root_ + "/manifests/" + name + ".sig";
}

std::string ModelStore::manifest_path(const std::string& name) const {
  return root_ + "/manifests/" + name + ".json";
}

std::optional<std::string> ModelStore::hash_of_blob_path(const std::string& path) const {
  const std::string prefix = root_ + "/" + kBlobPrefix;
  if (path.rfind(prefix, 0) != 0) return std::nullopt;
  std::string hex = path.substr(prefix.size());
  if (!is_sha256_hex(hex)) return std::nullopt;
  return hex;
}

Status ModelStore::save(const ModelManifest& m) const {
  json versions = json::array();
  for (const auto& v : m.versions) versions.push_back(to_json(v));
  const json j{{"format", "hearth-model-manifest-v1"}, {"name", m.name}, {"versions", versions}};
  if (Status s = platform::make_private_dir(root_ + "/manifests"); !s) return s;
  return platform::write_file_atomic(manifest_path(m.name), j.dump(2) + "\n", 0600);
}

Expected<ModelManifest> ModelStore::load_manifest(const std::string& path,
                                                  const std::string& name) const {
  auto text = platform::read_file(path, 1 << 20);
  if (!text) return Error{text.error()};
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("{}: not a JSON manifest", path);
  ModelManifest m;
  if (!j.contains("name") || !j["name"].is_string() || j["name"].get<std::string>() != name)
    return make_error("{}: manifest name does not match its file name '{}'", path, name);
  m.name = name;
  if (!j.contains("versions") || !j["versions"].is_array() || j["versions"].empty())
    return make_error("{}: manifest has no versions", path);
  for (const auto& e : j["versions"]) {
    auto v = version_from_json(e, path);
    if (!v) return Error{v.error()};
    m.versions.push_back(std::move(*v));
  }
  return m;
}

bool ModelStore::has(const std::string& name) const {
  std::error_code ec;
  return validate_name(name) && fs::is_regular_file(manifest_path(name), ec);
}

Expected<ModelManifest> ModelStore::get(const std::string& name) const {
  if (Status s = validate_name(name); !s) return Error{s.error()};
  std::error_code ec;
  if (!fs::is_regular_file(manifest_path(name), ec))
    return make_error("no model named '{}' in the store ({}); `hearth list` shows the models there",
                      name, root_);
  return load_manifest(manifest_path(name), name);
}

Expected<std::vector<ModelManifest>> ModelStore::list() const {
  std::vector<ModelManifest> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ + "/manifests", ec)) {
    const std::string file = e.path().filename().string();
    if (e.path().extension() != ".json") continue;
    const std::string name = file.substr(0, file.size() - 5);
    if (!validate_name(name)) continue;
    auto m = load_manifest(e.path().string(), name);
    if (!m) return Error{m.error()};
    out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Expected<ModelVersion> ModelStore::import(const std::string& file, const std::string& name,
                                          const Progress& progress,
                                          const std::string& expected_sha256) {
  if (Status s = validate_name(name); !s) return Error{s.error()};
  if (Status s = crypto_init(); !s) return Error{s.error()};
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return make_error("{}: no such file", file);
  const std::string source = fs::absolute(file, ec).lexically_normal().string();

  ModelVersion v;
  {
    auto model = engine::Model::load(file);  // the same checks a run makes
    if (!model) return make_error("cannot import: {}", model.error());
    v.architecture =
        std::string((*model)->gguf().get_string("general.architecture").value_or("unknown"));
    v.quantization = quantization_of((*model)->gguf());
  }
  std::optional<ModelManifest> existing;
  if (has(name)) {
    auto m = get(name);
    if (!m) return Error{m.error()};
    existing = std::move(*m);
  }

  if (Status s = platform::make_private_dir(root_ + "/blobs"); !s) return Error{s.error()};
  const std::string tmp = root_ + "/blobs/.import-" + std::to_string(::getpid()) + "-" +
                          std::to_string(std::random_device{}());
  // Same file system: a hard link, hashed in place. Otherwise a copy hashed as written.
  Expected<std::string> hash = Error{""};
  if (::link(source.c_str(), tmp.c_str()) == 0) {
    hash = sha256_file(tmp, progress);
  } else {
    hash = copy_and_hash(source, tmp, progress);
  }
  if (!hash) {
    ::unlink(tmp.c_str());
    return make_error("cannot import {}: {}; nothing was stored", file, hash.error());
  }
  if (!expected_sha256.empty() && *hash != expected_sha256) {
    ::unlink(tmp.c_str());
    return make_error("{}: sha256 mismatch: expected {}, got {}; nothing was imported", file,
                      expected_sha256, *hash);
  }
  v.sha256 = *hash;
  const std::string blob = blob_path(v.sha256);
  struct stat st {};
  if (::lstat(blob.c_str(), &st) == 0) {
    ::unlink(tmp.c_str());  // the same bytes are already stored
    if (!S_ISREG(st.st_mode))
      return make_error("{}: exists but is not a regular file; remove it", blob);
  } else {
    if (::rename(tmp.c_str(), blob.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return make_error("{}: cannot store blob: {}", blob, std::strerror(err));
    }
    if (Status s = platform::fsync_dir(root_ + "/blobs"); !s) return Error{s.error()};
    if (::lstat(blob.c_str(), &st) != 0) return make_error("{}: vanished after import", blob);
  }
  v.size = static_cast<uint64_t>(st.st_size);
  v.mtime_ns = mtime_ns(st);
  v.source = source;
  v.imported_at = v.verified_at = platform::unix_seconds();

  ModelManifest m = existing ? std::move(*existing) : ModelManifest{name, {}};
  if (!m.versions.empty() && m.current().sha256 == v.sha256 && !m.current().changed)
    return m.current();
  v.version = m.versions.empty() ? 1 : m.current().version + 1;
  m.versions.push_back(v);
  if (Status s = save(m); !s) {
    (void)drop_blob_if_unused(v.sha256);  // e.g. a disk that filled up after the blob
    return Error{s.error()};
  }
  return v;
}

Status ModelStore::drop_blob_if_unused(const std::string& sha256) const {
  auto all = list();
  if (!all) return Status(Error{all.error()});
  for (const auto& m : *all)
    for (const auto& v : m.versions)
      if (v.sha256 == sha256) return Status::ok();
  if (::unlink(blob_path(sha256).c_str()) != 0 && errno != ENOENT)
    return make_error("{}: cannot delete: {}", blob_path(sha256), std::strerror(errno));
  return Status::ok();
}

Status ModelStore::remove(const std::string& name) {
  auto m = get(name);
  if (!m) return Status(Error{m.error()});
  if (::unlink(manifest_path(name).c_str()) != 0)
    return make_error("{}: cannot delete: {}", manifest_path(name), std::strerror(errno));
  if (::unlink(signature_path(name).c_str()) != 0 && errno != ENOENT)
    return make_error("{}: cannot delete: {}", signature_path(name), std::strerror(errno));
  for (const auto& v : m->versions)
    if (Status s = drop_blob_if_unused(v.sha256); !s) return s;
  return Status::ok();
}

Expected<ModelVersion> ModelStore::rollback(const std::string& name) {
  auto m = get(name);
  if (!m) return Error{m.error()};
  if (m->versions.size() < 2)
    return make_error("'{}' has only version {}; there is no previous version to return to", name,
                      m->current().version);
  const std::string dropped = m->current().sha256;
  m->versions.pop_back();
  if (Status s = save(*m); !s) return Error{s.error()};
  if (Status s = drop_blob_if_unused(dropped); !s) return Error{s.error()};
  return m->current();
}

Expected<VerifyReport> ModelStore::rehash(ModelManifest& m, const Progress& progress) {
  VerifyReport r;
  r.name = m.name;
  ModelVersion& v = m.versions.back();
  const std::string blob = blob_path(v.sha256);
  struct stat st {};
  if (::lstat(blob.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    v.changed = true;
    r.detail = fmt::format("{} is missing or not a regular file", blob);
  } else {
    auto hash = sha256_file(blob, progress);
    r.actual_sha256 = hash ? *hash : "";
    if (hash && *hash == v.sha256) {
      v.changed = false;
      v.mtime_ns = mtime_ns(st);
      v.size = static_cast<uint64_t>(st.st_size);
      v.verified_at = platform::unix_seconds();
      r.ok = true;
    } else {
      v.changed = true;
      r.detail = hash ? fmt::format("hash is now {}", *hash) : hash.error();
    }
  }
  r.version = v;
  if (Status s = save(m); !s) return Error{s.error()};
  return r;
}

Expected<VerifyReport> ModelStore::verify(const std::string& name, const Progress& progress) {
  auto m = get(name);
  if (!m) return Error{m.error()};
  return rehash(*m, progress);
}

Expected<std::string> ModelStore::path_for_load(const std::string& name, const Progress& progress) {
  auto m = get(name);
  if (!m) return Error{m.error()};
  const ModelVersion& v = m->current();
  const std::string refuse = fmt::format(
      "model '{}' (version {}) no longer matches the sha256 recorded at import; it will not load. "
      "Restore the file or import it again; `hearth verify {}` re-checks it",
      name, v.version, name);
  if (v.changed) return Error{refuse};
  const std::string blob = blob_path(v.sha256);
  struct stat st {};
  if (::lstat(blob.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error("model '{}': its blob {} is missing; import it again", name, blob);
  if (static_cast<uint64_t>(st.st_size) != v.size || mtime_ns(st) != v.mtime_ns) {
    auto r = rehash(*m, progress);
    if (!r) return Error{r.error()};
    if (!r->ok) return Error{refuse};
  }
  return blob;
}

}  // namespace hearth::app
