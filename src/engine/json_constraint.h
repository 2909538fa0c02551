// JSON mode (OpenAI response_format json_object, Ollama format "json"): constrained
// decoding whose output is a syntactically valid JSON text (RFC 8259) with an object at
// the top level.
//
// JsonRecognizer is an incremental recogniser over bytes, a pushdown automaton: a mode
// (where in the grammar we are) and a stack of open containers (one bit each: object or
// array). feed() accepts a byte exactly when the bytes so far, with it, are a prefix of
// some document of the language below; it never accepts a byte that leads to a dead end,
// so every accepted prefix can still be completed. A refused byte leaves the recogniser
// failed (it refuses everything after). complete() is true once the top-level object has
// closed (trailing whitespace is still accepted, as the RFC allows).
//
// The language: RFC 8259's JSON-text whose value is an object, with these further rules
// so that every JSON parser takes the output:
//   - strings are valid UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF);
//   - a \u escape of a high surrogate (D800-DBFF) must be followed by a \u escape of a
//     low surrogate (DC00-DFFF), and a low one may not stand alone;
//   - numbers stay well inside the range of a double (RFC 8259 section 6): at most
//     kMaxIntegerDigits digits before the point and kMaxExponentDigits in the exponent
//     (parsers such as nlohmann::json refuse 1e400; the fraction is not limited);
//   - containers nest at most limits.max_depth deep (the top-level object is depth 1);
//   - with limits.max_whitespace_run > 0, at most that many whitespace bytes in a row
//     between tokens (small models in JSON mode otherwise like to emit newlines forever).
//
// JsonTokenFilter drives a recogniser from token ids: before each sampling step, mask()
// sets to -inf the logits of every token whose bytes (Tokenizer::token_to_piece, the bytes
// the generator streams) the recogniser would refuse, of tokens with no bytes (control
// tokens), and of end-of-generation tokens until the object is complete; once it is
// complete only end-of-generation tokens keep their logits. The cost per step is bounded
// by the vocabulary size, not by its bytes: tokens are grouped by their first two bytes;
// the recogniser tries each first byte once and drops the groups it refuses; outside
// strings it tries the second bytes of the groups left the same way (and clears the row
// in one sweep, putting back the few tokens kept); a token whose other bytes are plain
// string text (valid UTF-8, no quote, backslash or control byte) after a first byte that
// leaves the recogniser inside a string is accepted without a walk. Only the tokens left
// are walked byte by byte.
// What the filter knows of the vocabulary (the bytes, the groups) is a JsonVocabIndex, built
// once per tokenizer and shared, so that starting a JSON-mode answer costs no pass over the
// vocabulary. Measured with bench/json_mask.cpp on SmolLM2's 49,152 tokens: see BENCHMARKS.md.
//
// Thread safety: one recogniser and one filter per sequence, not shared; a JsonVocabIndex
// is immutable and shared by any number of filters on any threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer.h"

namespace hearth::engine {

inline constexpr int kMaxIntegerDigits = 100;
inline constexpr int kMaxExponentDigits = 2;

struct JsonLimits {
  int max_depth = 32;          // 1 to 64
  int max_whitespace_run = 0;  // 0: unlimited
};

class JsonRecognizer {
 public:
  explicit JsonRecognizer(JsonLimits limits = {});
  // Feeds one byte: true when the text stays a prefix of a valid document.
  bool feed(unsigned char byte);
  // Feeds bytes until one is refused: true when all were accepted.
  bool feed(std::string_view bytes);
  bool complete() const { return mode_ == Mode::kDone; }
  bool failed() const { return mode_ == Mode::kFailed; }
  // Inside a string with no escape or UTF-8 sequence pending: plain string text keeps
  // the recogniser here (what JsonTokenFilter's shortcut relies on).
  bool in_plain_string() const { return mode_ == Mode::kString; }
  int depth() const { return depth_; }
  // Puts the recogniser in the failed state; returns false.
  bool fail();

 private:
  enum class Mode : uint8_t {
    kStart,         // before the top-level '{'
    kObjectFirst,   // after '{': a key or '}'
    kObjectKey,     // after ',' in an object: a key
    kColon,         // after a key
    kValue,         // after ':' or ',' in an array
    kArrayFirst,    // after '[': a value or ']'
    kAfterValue,    // ',' or the closing bracket of the innermost container
    kDone,          // the top-level object has closed
    kString,        // inside a string (key_ says which kind)
    kEscape,        // after '\'
    kHex,           // inside \uXXXX: aux_ digits read, hex_ their value
    kLowBackslash,  // after a high surrogate escape: '\' must follow
    kLowU,          // then 'u'
    kUtf8,          // aux_ continuation bytes to go, the next one in [lo_, hi_]
    kNumMinus,      // after '-'
    kNumZero,       // after a leading 0
    kNumInt,        // in the integer digits
    kNumDot,        // after '.'
    kNumFrac,       // in the fraction digits
    kNumExp,        // after 'e' / 'E'
    kNumExpSign,    // after the exponent's sign
    kNumExpDigits,  // in the exponent digits
    kLiteral,       // inside true / false / null: literal_ which, aux_ bytes matched
    kFailed,
  };
  bool structural(unsigned char c);
  bool value_start(unsigned char c);
  bool after_value(unsigned char c);
  bool push(bool object);
  bool pop(bool object);
  bool string_byte(unsigned char c);
  bool hex_digit(unsigned char c);
  bool number_byte(unsigned char c);

  uint64_t stack_ = 0;  // bit d: the container at depth d + 1 is an object
  uint16_t hex_ = 0;
  uint16_t ws_run_ = 0;
  uint8_t depth_ = 0;
  uint8_t aux_ = 0;
  uint8_t lo_ = 0x80, hi_ = 0xbf;
  uint8_t literal_ = 0;
  uint8_t max_depth_;
  uint16_t max_ws_run_;
  Mode mode_ = Mode::kStart;
  bool key_ = false;  // the string being read is an object key
  bool low_ = false;  // the \u escape being read must be a low surrogate
};

// What JsonTokenFilter needs to know of a vocabulary, read once: every token's bytes (its
// Tokenizer::token_to_piece), which tokens end generation or stream nothing, which have a
// tail of plain string text, and the tokens with bytes grouped by their first two bytes.
// It does not depend on JsonLimits. Building it reads every token (3-16 ms for SmolLM2's
// 49,152 tokens, see BENCHMARKS.md), so it is built once per tokenizer (Model holds one,
// Model::json_vocab_index) and shared by the filters of every JSON-mode request.
// Thread safety: immutable after construction; share it between threads freely.
class JsonVocabIndex {
 public:
  // Reads every token's bytes once (allocates; not for the token loop).
  explicit JsonVocabIndex(const Tokenizer& tok);
  JsonVocabIndex(const JsonVocabIndex&) = delete;
  JsonVocabIndex& operator=(const JsonVocabIndex&) = delete;
  int32_t n_vocab() const { return n_vocab_; }

 private:
  friend class JsonTokenFilter;
  enum : uint8_t { kEog = 1, kPlainTail = 2 };
  std::string_view bytes(int32_t token) const;
  bool has(int32_t token, uint8_t flag) const { return flags_[static_cast<size_t>(token)] & flag; }

  int32_t n_vocab_;
  std::string bytes_;             // every token's bytes, back to back
  std::vector<uint32_t> offset_;  // [n_vocab + 1] into bytes_
  std::vector<uint8_t> flags_;    // [n_vocab] kEog | kPlainTail
  // Tokens with bytes (not end-of-generation) grouped by their first two bytes: group
  // b0 * 257 + 0 holds the one-byte token b0, group b0 * 257 + 1 + b1 those that go on with b1.
  static constexpr size_t kGroups = 256 * 257;
  static size_t group_of(std::string_view bytes);
  std::vector<int32_t> by_group_;
  std::vector<uint32_t> group_;    // [kGroups + 1]: group g is by_group_[group_[g], group_[g + 1])
  std::vector<int32_t> by_first_;  // the same tokens by first byte alone, in id order
  std::vector<uint32_t> first_group_;  // [257]: first byte b0 is by_first_[[b0], [b0 + 1])
  std::vector<int32_t> no_bytes_;      // tokens that stream nothing, end-of-generation ones too
};

// One JSON-mode answer: a recogniser, mask()'s scratch and a shared JsonVocabIndex.
class JsonTokenFilter {
 public:
  // A request's set-up: no pass over the vocabulary (index must not be null).
  explicit JsonTokenFilter(std::shared_ptr<const JsonVocabIndex> index, JsonLimits limits = {});
  // Builds an index of its own (reads every token: for tests and one-off uses).
  explicit JsonTokenFilter(const Tokenizer& tok, JsonLimits limits = {});
  // logits: [n_vocab]. Sets refused tokens to -inf and returns how many tokens still have
  // a logit above -inf (0 only if the vocabulary cannot continue the document).
  size_t mask(float* logits);
  // Advances the document by a sampled token. A token mask() would refuse (or an
  // out-of-range id) returns false and leaves the recogniser failed.
  bool accept(int32_t token);
  bool complete() const { return rec_.complete(); }
  const JsonRecognizer& recognizer() const { return rec_; }

 private:
  bool rest_accepted(const JsonRecognizer& first, int32_t id) const;

  struct Kept {
    int32_t id;
    float logit;
  };
  std::shared_ptr<const JsonVocabIndex> index_;  // never null
  JsonRecognizer rec_;
  // mask()'s scratch [n_vocab], left uninitialised: the tokens kept and their logits.
  std::unique_ptr<Kept[]> kept_;
};

}  // namespace hearth::engine
