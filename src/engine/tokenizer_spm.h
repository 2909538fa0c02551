// SentencePiece-style BPE ("llama" tokenizer model): spaces become U+2581, the text is cut
// into UTF-8 characters, and the adjacent pair whose concatenation is the highest-scoring
// vocabulary token is merged until none is left (leftmost first among equal scores);
// symbols that are no token are re-split along their merges, then fall back to <0xNN>
// byte tokens (llama.cpp's llm_tokenizer_spm_session).
//
// Thread safety: immutable after construction; encode may run concurrently.
#pragma once

#include <memory>

#include "engine/tokenizer.h"
#include "format/gguf.h"

namespace hearth::engine::detail {

Expected<std::unique_ptr<Tokenizer>> make_spm_tokenizer(const format::GgufFile& gguf);

}  // namespace hearth::engine::detail
