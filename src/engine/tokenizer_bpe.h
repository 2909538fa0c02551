// Byte-level BPE ("gpt2" tokenizer model): text is split by the pre-tokenizer named in
// tokenizer.ggml.pre, each piece's bytes are mapped to printable code points (GPT-2's
// bytes_to_unicode), and adjacent symbols are merged by tokenizer.ggml.merges rank, lowest
// rank first, leftmost first among equal ranks (llama.cpp's llm_tokenizer_bpe_session).
//
// Thread safety: immutable after construction; encode may run concurrently.
#pragma once

#include <memory>

#include "engine/tokenizer.h"
#include "format/gguf.h"

namespace hearth::engine::detail {

Expected<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(const format::GgufFile& gguf);

}  // namespace hearth::engine::detail
