#include "app/model_paths.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "app/model_store.h"
#include "app/paths.h"

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

Expected<std::string> resolve_model(const std::string& model) {
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
  if (ModelStore store(data_dir()); store.has(model)) return store.path_for_load(model);
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

}  // namespace hearth::app
