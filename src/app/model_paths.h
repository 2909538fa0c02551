// Where models live and how a MODEL argument becomes a file path.
//
// Model directory: $HEARTH_MODELS, else $HEARTH_HOME/models, else
// ${XDG_DATA_HOME:-~/.local/share}/hearth/models (same rule as scripts/fetch_models.py).
#pragma once

#include <string>
#include <vector>

#include "platform/status.h"

namespace hearth::app {

inline constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

std::string model_dir();
// The .gguf files in the model directory, sorted by name.
std::vector<std::string> list_models();
// MODEL as given by the user: an existing file path; else a name in the model store
// (app/model_store.h; refused if its blob no longer matches its hash); else a file in the model directory
// named MODEL or MODEL.gguf, or the one file whose name starts with MODEL
// (case-insensitive). Empty means the config's default_model, else kDefaultModelFile.
// Reads the config file (app/config.h): a config error is returned as the error, and with
// require_signed = true only a store model whose current version carries a valid signature
// by a trusted key (app/signing.h) resolves; anything else is refused with how to fix it.
Expected<std::string> resolve_model(const std::string& model);

}  // namespace hearth::app
