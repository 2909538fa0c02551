// The configuration file: a few settings that would otherwise be repeated as
// flags.
//
// File: $HEARTH_CONFIG if set, else
// ${XDG_CONFIG_HOME:-~/.config}/hearth/config.toml (app/paths.h config_dir()).
// A missing file means every default. The file is TOML; every key is documented
// in README.md ("Configuration file"). A flag on the command line always
// overrides the file.
//
//   require_signed  = false   # models must carry a signature by a trusted key
//   (`hearth trust`) require_sandbox = false   # as --require-sandbox: refuse
//   to run unconfined default_model   = "NAME"  # the model used when a command
//   names none threads         = 4       # as --threads (run, generate, serve,
//   info, eval) ctx             = 2048    # as --ctx (run, generate, serve,
//   info, eval) [serve] port            = 11435   # as `hearth serve --port`
//   listen          = "127.0.0.1"
//   parallel        = 2
//   cors_origin     = "http://localhost:3000"
//
// Invariants: an unknown key, a value of the wrong type or out of range is an
// error naming the file, the line and the key; nothing is silently ignored. A
// key not given leaves its std::optional empty, so the command's own default
// applies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "platform/status.h"

namespace hearth::app {

struct ServeConfig {
  std::optional<int> port;           // 0..65535
  std::optional<std::string> listen; // an address to bind
  std::optional<int> parallel;       // 1..64
  std::optional<std::string> cors_origin;
};

struct Config {
  std::string path; // the file these values came from ("" when there was none)
  bool require_signed = false;
  bool require_sandbox = false;
  std::optional<std::string> default_model;
  std::optional<int> threads; // 1..1024
  std::optional<int64_t> ctx; // >= 1
  ServeConfig serve;
};

// The config file's path (it need not exist).
std::string config_path();

// Parses TOML text. `source` names the file in error messages ("config.toml:3:
// ...").
Expected<Config> parse_config(std::string_view text, const std::string &source);

// Reads a config file: defaults when it does not exist, an error when it cannot
// be read (or is over 1 MiB) or does not parse.
Expected<Config> read_config(const std::string &path);

// read_config(config_path()), read once per process: later calls return the
// first result, so code that runs after the sandbox is on (which forbids
// opening the file) still sees it. Thread-safe.
const Expected<Config> &load_config();

} // namespace hearth::app
