#include "cli/confine.h"

#include <fmt/core.h>

#include <filesystem>

#include "app/config.h"
#include "app/model_paths.h"
#include "app/paths.h"

namespace hearth::cli {

Expected<platform::SandboxState> confine(const std::string& model_arg, bool required) {
  const auto& cfg = app::load_config();
  if (!cfg) return Error{cfg.error()};
  auto model = app::resolve_model(model_arg);
  if (!model) return Error{model.error()};
  std::error_code ec;
  const std::string data =
      std::filesystem::is_directory(app::data_dir(), ec) ? app::data_dir() : std::string();
  auto st = platform::confine_process(platform::chat_policy({*model}, data));
  const std::string missing = st ? st->missing() : "the sandbox failed: " + st.error();
  if (!missing.empty()) {
    if (required || cfg->require_sandbox)
      return make_error("{}: {}; refusing to run without the full sandbox",
                        required ? "--require-sandbox" : "require_sandbox = true in " + cfg->path,
                        missing);
    fmt::print(stderr,
               "hearth: note: sandbox incomplete: {} (--require-sandbox makes this fatal)\n",
               missing);
  }
  // A failed part leaves an unknown state: report none rather than more than there is.
  if (!st) return platform::SandboxState{};
  return st;
}

nlohmann::json sandbox_audit(const platform::SandboxState& state) {
  return {{"confined", state.fs_restricted},
          {"landlock_abi", state.fs_restricted ? state.abi : platform::landlock_abi()},
          {"tcp_refused", state.tcp_restricted},
          {"seccomp", state.seccomp}};
}

}  // namespace hearth::cli
