#include "app/model_paths.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "app/config.h"
#include "app/model_store.h"
#include "app/paths.h"
#include "app/signing.h"

namespace hearth::app {
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

std::string model_dir() {
  if (!env("HEARTH_MODELS").empty()) return env("HEARTH_MODELS");
  if (!env("HEARTH_HOME").empty()) return env("HEARTH_HOME") + "/models";
  std::string data = env("XDG_DATA_HOME");
  if (data.empty()) data = env("HOME") + "/.local/share";
  return data + "/hearth/models";
}

std::vector<std::string> list_models() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(model_dir(), ec)) {
    if (e.is_regular_file(ec) && e.path().extension() == ".gguf") out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// With require_signed: `path` loads only when it is the blob of a store model whose current
// version is signed by a trusted key. `name` is the store name it was given as ("" for a path).
Status check_signed(const Config& cfg, const std::string& name, const std::string& path) {
  ModelStore store(data_dir());
  const std::string why = fmt::format("require_signed = true in {}", cfg.path);
  auto trusted = load_trusted_keys(store.root());
  if (!trusted) return Error{trusted.error()};
  std::vector<ModelManifest> candidates;
  if (!name.empty()) {
    auto m = store.get(name);
    if (!m) return Error{m.error()};
    candidates.push_back(std::move(*m));
  } else if (const auto hash = store.hash_of_blob_path(path)) {
    auto all = store.list();
    if (!all) return Error{all.error()};
    for (auto& m : *all)
      if (m.current().sha256 == *hash) candidates.push_back(std::move(m));
  }
  for (const auto& m : candidates) {
    auto c = check_signature(store, m, *trusted);
    if (!c) return Error{c.error()};
    if (c->state == SignatureState::kTrusted) return Status::ok();
    if (name.empty()) continue;
    const std::string fix =
        c->state == SignatureState::kUntrusted
            ? fmt::format("trust its signer with `hearth trust add {}`", c->signer)
            : fmt::format("sign it with `hearth sign {}` (`hearth keygen` makes a key; trust it "
                          "with `hearth trust add`)",
                          name);
    return make_error(
        "model '{}' is {} and {}: it will not load. To fix: {}, or set require_signed = false",
        name, state_name(c->state), why, fix);
  }
  return make_error(
      "{}: {}, and this file is not a signed model in the store; it will not load. To fix: "
      "`hearth import {}` and `hearth sign NAME`, then use it by NAME",
      path, why, path);
}

Expected<std::string> resolve_path(const std::string& model, std::string& store_name) {
  std::error_code ec;
  const std::string dir = model_dir();
  if (model.empty()) {
    const std::string p = dir + "/" + kDefaultModelFile;
    if (fs::is_regular_file(p, ec)) return p;
    return make_error("the default model {} is not in {}; run `make models` (scripts/fetch_models.py) to fetch it, or name a .gguf file",
                      kDefaultModelFile, dir);
  }
  if (fs::exists(model, ec)) {
    if (!fs::is_regular_file(model, ec)) return make_error("{}: not a regular file", model);
    return model;
  }
  if (model.find('/') != std::string::npos) return make_error("{}: no such file", model);
  if (ModelStore store(data_dir()); store.has(model)) {
    store_name = model;
    return store.path_for_load(model);
  }
  for (const std::string& name : {model, model + ".gguf"}) {
    const std::string p = dir + "/" + name;
    if (fs::is_regular_file(p, ec)) return p;
  }
  std::vector<std::string> matches;
  const std::vector<std::string> all = list_models();
  for (const std::string& f : all)
    if (lower(f).rfind(lower(model), 0) == 0) matches.push_back(f);
  if (matches.size() == 1) return dir + "/" + matches[0];
  std::string known;
  for (const std::string& f : (matches.empty() ? all : matches)) known += (known.empty() ? "" : ", ") + f;
  if (matches.size() > 1) return make_error("model name '{}' is ambiguous in {}: {}", model, dir, known);
  return make_error("unknown model '{}': not a file, and not in {} (models there: {})", model, dir,
                    known.empty() ? "none" : known);
}

}  // namespace

Expected<std::string> resolve_model(const std::string& model) {
  const auto& cfg = load_config();
  if (!cfg) return Error{cfg.error()};
  std::string store_name;
  auto path = resolve_path(model.empty() ? cfg->default_model.value_or("") : model, store_name);
  if (!path || !cfg->require_signed) return path;
  if (Status s = check_signed(*cfg, store_name, *path); !s) return Error{s.error()};
  return path;
}

}  // namespace hearth::app
