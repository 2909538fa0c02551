#include "cli/confine.h"

#include <fmt/core.h>
#include <unistd.h>

#include <filesystem>

#include "app/model_paths.h"
#include "app/paths.h"
#include "cli/vault_access.h"
#include "platform/sandbox.h"

namespace hearth::cli {

Expected<std::string> confine_chat(const std::string& model_arg, bool required,
                                   HistoryHook* history) {
  platform::SandboxPolicy p;
  auto model = app::resolve_model(model_arg);
  if (!model) return Error{model.error()};
  // The model; this process's own /proc entries (sanitizers read them); CPU topology for
  // the thread pool and the memory check for the KV cache, which come after this.
  p.read_only = {*model, "/proc/self", "/proc/cpuinfo", "/proc/meminfo"};
  std::error_code ec;
  if (std::filesystem::is_directory(app::data_dir(), ec)) p.read_write = {app::data_dir()};
  auto st = platform::apply_landlock(p);
  if (!st && required)
    return make_error("--require-sandbox: cannot confine this process: {}", st.error());
  const std::string state =
      st ? st->describe() : "hearth: note: running unconfined (" + st.error() + ")";
  if (!st && isatty(STDERR_FILENO)) fmt::print(stderr, "{}\n", state);
  if (history)
    history->audit_event("sandbox", {{"confined", st.has_value()},
                                     {"landlock_abi", st ? st->abi : platform::landlock_abi()},
                                     {"tcp_refused", st && st->tcp_restricted}});
  return state;
}

}  // namespace hearth::cli
