// Where Hearth keeps the user's data and configuration.
//
// Data directory: $HEARTH_HOME, else ${XDG_DATA_HOME:-~/.local/share}/hearth. It holds
// models/ (plain .gguf files), blobs/ and manifests/ (the model store), vault.db (the
// encrypted history), vault.key (only for a vault without passphrase) and audit.log.
// Config directory: ${XDG_CONFIG_HOME:-~/.config}/hearth.
#pragma once

#include <string>

namespace hearth::app {

std::string data_dir();
std::string config_dir();

}  // namespace hearth::app
