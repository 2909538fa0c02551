#include "cli/confine.h"

#include <fmt/core.h>
#include <unistd.h>

#include <filesystem>

#include "app/model_paths.h"
#include "app/paths.h"
#include "platform/sandbox.h"

namespace hearth::cli {

Expected<std::string> confine_chat(const std::string& model_arg, bool required) {
  platform::SandboxPolicy p;
  auto model = app::resolve_model(model_arg);
  if (!model) return Error{model.error()};
  // The model; this process's own /proc entries (sanitizers read them); CPU topology for
  // the thread pool and the memory check for the KV cache, which come after this.
  p.read_only = {*model, "/proc/self", "/proc/cpuinfo", "/proc/meminfo"};
  std::error_code ec;
  if (std::filesystem::is_directory(app::data_dir(), ec)) p.read_write = {app::data_dir()};
  auto st = platform::apply_landlock(p);
  if (st) return st->describe();
  if (required) return make_error("--require-sandbox: cannot confine this process: {}", st.error());
  const std::string note = "hearth: note: running unconfined (" + st.error() + ")";
  if (isatty(STDERR_FILENO)) fmt::print(stderr, "{}\n", note);
  return note;
}

}  // namespace hearth::cli
