// A one-line progress bar on stderr for long hashes and copies (only when stderr is a terminal).
#pragma once

#include <string>

#include "app/crypto.h"

namespace hearth::cli {

// A Progress callback that draws "LABEL [#####.....]  45%  61/135 MB"; finish_progress
// ends the line.
app::Progress progress_bar(std::string label);
void finish_progress();

}  // namespace hearth::cli
