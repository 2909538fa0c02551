#include "app/paths.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace hearth::app {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string home() {
  const std::string h = env("HOME");
  if (!h.empty()) return h;
  const passwd* pw = ::getpwuid(::getuid());
  return pw && pw->pw_dir ? std::string(pw->pw_dir) : std::string("/");
}

}  // namespace

std::string data_dir() {
  if (!env("HEARTH_HOME").empty()) return env("HEARTH_HOME");
  std::string data = env("XDG_DATA_HOME");
  if (data.empty()) data = home() + "/.local/share";
  return data + "/hearth";
}

std::string config_dir() {
  std::string cfg = env("XDG_CONFIG_HOME");
  if (cfg.empty()) cfg = home() + "/.config";
  return cfg + "/hearth";
}

}  // namespace hearth::app
