// Tokenizers built from GGUF metadata (tokenizer.ggml.*), matching llama.cpp's ids.
//
//   model "gpt2":  byte-level BPE; pre-tokenizer regexes chosen by tokenizer.ggml.pre
//                  (at least smollm, llama3 / llama-bpe, qwen2, gpt2 / default).
//   model "llama": SentencePiece-style BPE over scores, with byte fallback (<0xNN>).
//
// Thread safety: immutable after from_gguf(); encode/decode may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "format/gguf.h"
#include "platform/status.h"

namespace hearth::engine {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const format::GgufFile& gguf);

  // add_special: add BOS (and EOS) as the model's add_bos/add_eos flags say.
  // parse_special: text such as "<|im_start|>" becomes its special token; otherwise it is
  // tokenized as plain text. Same meaning as llama.cpp's llama_tokenize().
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Bytes the token stands for in output text. Control tokens (BOS, <|im_end|> ...) give
  // their text only when `special` is true, else "". May be part of a UTF-8 character.
  virtual std::string token_to_piece(int32_t id, bool special) const = 0;
  // Text of a sequence of ids, as llama_detokenize(remove_special = false,
  // unparse_special = special). Ids out of range give "".
  std::string decode(const std::vector<int32_t>& ids, bool special) const;

  virtual int32_t n_vocab() const = 0;
  virtual std::string_view token_text(int32_t id) const = 0;  // as stored in the vocab
  virtual int32_t find_token(std::string_view text) const = 0;  // -1 when absent
  virtual int32_t bos() const = 0;  // -1 when the model has none
  virtual int32_t eos() const = 0;
  virtual bool add_bos() const = 0;
  virtual bool add_eos() const { return false; }
  // Detokenization rules (llama.cpp's llama_detokenize): with add_space_prefix, decode()
  // drops one leading space of the first token's piece; with clean_spaces it removes the
  // space before ? ! . , and in " 's", " 'm", " 're", " 've", and around a lone " ' ".
  virtual bool add_space_prefix() const { return false; }
  virtual bool clean_spaces() const { return false; }
  virtual bool is_eog(int32_t id) const = 0;  // end of generation (EOS, EOT, <|im_end|>...)
  virtual bool is_control(int32_t id) const = 0;
  virtual std::string_view model() const = 0;  // "gpt2" or "llama"
  virtual std::string_view pre() const = 0;    // pre-tokenizer name
};

// Turns a stream of token ids into valid UTF-8 text: bytes of a character split across
// tokens are held back until the character is complete. flush() returns what is left
// (an incomplete tail becomes U+FFFD).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool special = false) : tok_(tok), special_(special) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool special_;
  std::string pending_;
};

}  // namespace hearth::engine
