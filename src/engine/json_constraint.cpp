#include "engine/json_constraint.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include "platform/utf8.h"

namespace hearth::engine {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr const char* kLiterals[] = {"true", "false", "null"};

bool is_whitespace(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True when `s` may follow an open string unchanged: complete UTF-8 characters (as the
// recogniser defines them) and no quote, backslash or control byte.
bool plain_string_text(std::string_view s) {
  if (s.find_first_of("\"\\") != std::string_view::npos) return false;
  JsonRecognizer r;  // without quotes or backslashes, it stays in this string or fails
  if (!r.feed(std::string_view("{\"")) || !r.feed(s)) return false;
  return r.in_plain_string();
}

}  // namespace

JsonRecognizer::JsonRecognizer(JsonLimits limits)
    : max_depth_(static_cast<uint8_t>(std::clamp(limits.max_depth, 1, 64))),
      max_ws_run_(static_cast<uint16_t>(std::clamp(limits.max_whitespace_run, 0, 65535))) {}

bool JsonRecognizer::fail() {
  mode_ = Mode::kFailed;
  return false;
}

bool JsonRecognizer::feed(std::string_view bytes) {
  for (char c : bytes)
    if (!feed(static_cast<unsigned char>(c))) return false;
  return true;
}

bool JsonRecognizer::feed(unsigned char c) {
  switch (mode_) {
    case Mode::kString:
    case Mode::kEscape:
    case Mode::kUtf8:
    case Mode::kLowBackslash:
    case Mode::kLowU:
      return string_byte(c);
    case Mode::kHex:
      return hex_digit(c);
    case Mode::kNumMinus:
    case Mode::kNumZero:
    case Mode::kNumInt:
    case Mode::kNumDot:
    case Mode::kNumFrac:
    case Mode::kNumExp:
    case Mode::kNumExpSign:
    case Mode::kNumExpDigits:
      return number_byte(c);
    case Mode::kLiteral: {
      const char* lit = kLiterals[literal_];
      if (c != static_cast<unsigned char>(lit[aux_])) return fail();
      if (lit[++aux_] == '\0') mode_ = Mode::kAfterValue;
      return true;
    }
    case Mode::kFailed:
      return false;
    default:
      return structural(c);
  }
}

// Between tokens: whitespace, or the byte the grammar expects in this mode.
bool JsonRecognizer::structural(unsigned char c) {
  if (is_whitespace(c)) {
    if (max_ws_run_ > 0 && ws_run_ >= max_ws_run_) return fail();
    ++ws_run_;
    return true;
  }
  ws_run_ = 0;
  switch (mode_) {
    case Mode::kStart:
      if (c != '{') return fail();
      return push(true);
    case Mode::kObjectFirst:
      if (c == '}') return pop(true);
      [[fallthrough]];
    case Mode::kObjectKey:
      if (c != '"') return fail();
      mode_ = Mode::kString;
      key_ = true;
      return true;
    case Mode::kColon:
      if (c != ':') return fail();
      mode_ = Mode::kValue;
      return true;
    case Mode::kArrayFirst:
      if (c == ']') return pop(false);
      return value_start(c);
    case Mode::kValue:
      return value_start(c);
    case Mode::kAfterValue:
      return after_value(c);
    default:  // kDone: only whitespace
      return fail();
  }
}

bool JsonRecognizer::value_start(unsigned char c) {
  switch (c) {
    case '{':
      return push(true);
    case '[':
      return push(false);
    case '"':
      mode_ = Mode::kString;
      key_ = false;
      return true;
    case '-':
      mode_ = Mode::kNumMinus;
      return true;
    case '0':
      mode_ = Mode::kNumZero;
      return true;
    case 't':
    case 'f':
    case 'n':
      literal_ = c == 't' ? 0 : c == 'f' ? 1 : 2;
      aux_ = 1;
      mode_ = Mode::kLiteral;
      return true;
    default:
      if (c < '1' || c > '9') return fail();
      mode_ = Mode::kNumInt;
      aux_ = 1;
      return true;
  }
}

bool JsonRecognizer::after_value(unsigned char c) {
  const bool in_object = (stack_ >> (depth_ - 1)) & 1u;
  if (c == ',') {
    mode_ = in_object ? Mode::kObjectKey : Mode::kValue;
    return true;
  }
  if (c == '}' || c == ']') return pop(c == '}');
  return fail();
}

bool JsonRecognizer::push(bool object) {
  if (depth_ >= max_depth_) return fail();
  const uint64_t bit = uint64_t{1} << depth_;
  stack_ = object ? (stack_ | bit) : (stack_ & ~bit);
  ++depth_;
  mode_ = object ? Mode::kObjectFirst : Mode::kArrayFirst;
  return true;
}

bool JsonRecognizer::pop(bool object) {
  const bool in_object = (stack_ >> (depth_ - 1)) & 1u;
  if (in_object != object) return fail();
  --depth_;
  mode_ = depth_ == 0 ? Mode::kDone : Mode::kAfterValue;
  return true;
}

bool JsonRecognizer::string_byte(unsigned char c) {
  switch (mode_) {
    case Mode::kEscape:
      switch (c) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          mode_ = Mode::kString;
          return true;
        case 'u':
          mode_ = Mode::kHex;
          aux_ = 0;
          hex_ = 0;
          low_ = false;
          return true;
        default:
          return fail();
      }
    case Mode::kLowBackslash:
      if (c != '\\') return fail();
      mode_ = Mode::kLowU;
      return true;
    case Mode::kLowU:
      if (c != 'u') return fail();
      mode_ = Mode::kHex;
      aux_ = 0;
      hex_ = 0;
      low_ = true;
      return true;
    case Mode::kUtf8:
      if (c < lo_ || c > hi_) return fail();
      lo_ = 0x80;
      hi_ = 0xbf;
      if (--aux_ == 0) mode_ = Mode::kString;
      return true;
    default:  // kString
      break;
  }
  if (c == '"') {
    mode_ = key_ ? Mode::kColon : Mode::kAfterValue;
    return true;
  }
  if (c == '\\') {
    mode_ = Mode::kEscape;
    return true;
  }
  if (c < 0x20) return fail();
  if (c < 0x80) return true;
  // A UTF-8 lead byte: how many continuation bytes follow, and the range of the first one
  // that excludes overlong forms, surrogates and code points past U+10FFFF.
  const platform::utf8::Lead lead = platform::utf8::lead(c);
  if (lead.length == 0) return fail();
  aux_ = static_cast<uint8_t>(lead.length - 1);
  lo_ = lead.second_min;
  hi_ = lead.second_max;
  mode_ = Mode::kUtf8;
  return true;
}

// Surrogates are checked digit by digit (a low one is DCxx-DFxx), so that no prefix is
// accepted that no digits could complete.
bool JsonRecognizer::hex_digit(unsigned char c) {
  const int v = hex_value(c);
  if (v < 0) return fail();
  hex_ = static_cast<uint16_t>((hex_ << 4) | v);
  ++aux_;
  if (aux_ == 1 && low_ && hex_ != 0xd) return fail();
  if (aux_ == 2) {
    const bool low_surrogate = hex_ >= 0xdc && hex_ <= 0xdf;
    if (low_surrogate != low_) return fail();
  }
  if (aux_ < 4) return true;
  const bool high_surrogate = !low_ && hex_ >= 0xd800 && hex_ <= 0xdbff;
  mode_ = high_surrogate ? Mode::kLowBackslash : Mode::kString;
  low_ = false;
  return true;
}

// aux_ counts the digits of the part being read (integer or exponent) for the limits.
bool JsonRecognizer::number_byte(unsigned char c) {
  const bool digit = is_digit(c);
  switch (mode_) {
    case Mode::kNumMinus:
      if (!digit) return fail();
      mode_ = c == '0' ? Mode::kNumZero : Mode::kNumInt;
      aux_ = 1;
      return true;
    case Mode::kNumDot:
      if (!digit) return fail();
      mode_ = Mode::kNumFrac;
      return true;
    case Mode::kNumExp:
      if (c == '+' || c == '-') {
        mode_ = Mode::kNumExpSign;
        return true;
      }
      [[fallthrough]];
    case Mode::kNumExpSign:
      if (!digit) return fail();
      mode_ = Mode::kNumExpDigits;
      aux_ = 1;
      return true;
    case Mode::kNumInt:
      if (digit) return ++aux_ <= kMaxIntegerDigits || fail();
      break;
    case Mode::kNumExpDigits:
      if (digit) return ++aux_ <= kMaxExponentDigits || fail();
      break;
    case Mode::kNumFrac:
      if (digit) return true;
      break;
    default:  // kNumZero: no digit may follow a leading zero
      break;
  }
  // kNumZero, kNumInt, kNumFrac or kNumExpDigits: '.' and the exponent where the grammar
  // allows them, else the number has ended and the byte belongs to what follows.
  if (c == '.' && (mode_ == Mode::kNumZero || mode_ == Mode::kNumInt)) {
    mode_ = Mode::kNumDot;
    return true;
  }
  if ((c == 'e' || c == 'E') && mode_ != Mode::kNumExpDigits) {
    mode_ = Mode::kNumExp;
    return true;
  }
  if (digit) return fail();  // a digit after a leading zero
  mode_ = Mode::kAfterValue;
  return structural(c);
}

// Key of a token's group: its first byte, then its second (0: a one-byte token).
size_t JsonVocabIndex::group_of(std::string_view b) {
  return static_cast<unsigned char>(b[0]) * 257u +
         (b.size() == 1 ? 0u : 1u + static_cast<unsigned char>(b[1]));
}

JsonVocabIndex::JsonVocabIndex(const Tokenizer& tok) : n_vocab_(std::max(0, tok.n_vocab())) {
  const auto n = static_cast<size_t>(n_vocab_);
  offset_.resize(n + 1);
  flags_.assign(n, 0);
  for (int32_t id = 0; id < n_vocab_; ++id) {
    const auto i = static_cast<size_t>(id);
    offset_[i] = static_cast<uint32_t>(bytes_.size());
    if (tok.is_eog(id)) {
      flags_[i] = kEog;
      no_bytes_.push_back(id);
      continue;
    }
    const std::string piece = tok.token_to_piece(id, false);
    if (piece.empty()) {
      no_bytes_.push_back(id);
      continue;
    }
    bytes_ += piece;
    if (plain_string_text(std::string_view(piece).substr(1))) flags_[i] = kPlainTail;
  }
  offset_[n] = static_cast<uint32_t>(bytes_.size());
  // Counting sort of the tokens with bytes by group.
  group_.assign(kGroups + 1, 0);
  for (int32_t id = 0; id < n_vocab_; ++id) {
    const std::string_view b = bytes(id);
    if (!b.empty() && !has(id, kEog)) ++group_[group_of(b) + 1];
  }
  for (size_t g = 1; g <= kGroups; ++g) group_[g] += group_[g - 1];
  by_group_.resize(group_[kGroups]);
  std::vector<uint32_t> next(group_.begin(), group_.end() - 1);
  for (int32_t id = 0; id < n_vocab_; ++id) {
    const std::string_view b = bytes(id);
    if (!b.empty() && !has(id, kEog)) by_group_[next[group_of(b)]++] = id;
  }
  // The same tokens by first byte alone, in id order.
  first_group_.assign(257, 0);
  for (unsigned b0 = 0; b0 < 256; ++b0) first_group_[b0 + 1] = group_[(b0 + 1) * 257u];
  by_first_.resize(by_group_.size());
  std::vector<uint32_t> next_first(first_group_.begin(), first_group_.end() - 1);
  for (int32_t id = 0; id < n_vocab_; ++id) {
    const std::string_view b = bytes(id);
    if (!b.empty() && !has(id, kEog))
      by_first_[next_first[static_cast<unsigned char>(b[0])]++] = id;
  }
}

std::string_view JsonVocabIndex::bytes(int32_t token) const {
  const auto i = static_cast<size_t>(token);
  return std::string_view(bytes_).substr(offset_[i], offset_[i + 1] - offset_[i]);
}

JsonTokenFilter::JsonTokenFilter(std::shared_ptr<const JsonVocabIndex> index, JsonLimits limits)
    : index_(std::move(index)),
      rec_(limits),
      kept_(std::make_unique_for_overwrite<Kept[]>(static_cast<size_t>(index_->n_vocab()))) {}

JsonTokenFilter::JsonTokenFilter(const Tokenizer& tok, JsonLimits limits)
    : JsonTokenFilter(std::make_shared<const JsonVocabIndex>(tok), limits) {}

// Whether token `id`, whose first byte took the recogniser to `first`, stays.
bool JsonTokenFilter::rest_accepted(const JsonRecognizer& first, int32_t id) const {
  if (first.in_plain_string() && index_->has(id, JsonVocabIndex::kPlainTail)) return true;
  JsonRecognizer walk = first;
  return walk.feed(index_->bytes(id).substr(1));
}

size_t JsonTokenFilter::mask(float* logits) {
  const JsonVocabIndex& ix = *index_;
  const int32_t n_vocab = ix.n_vocab_;
  size_t allowed = 0;
  if (rec_.complete()) {
    for (int32_t id = 0; id < n_vocab; ++id) {
      if (!ix.has(id, JsonVocabIndex::kEog))
        logits[id] = kNegInf;
      else if (logits[id] > kNegInf)
        ++allowed;
    }
    return allowed;
  }
  // Already impossible logits (-inf, or NaN, which the sampler drops) are not looked at.
  const auto open = [&](int32_t id) { return logits[id] > kNegInf; };
  if (rec_.in_plain_string()) {
    // Most tokens stay: refuse the others where they are, a first byte's tokens in id order.
    for (int32_t id : ix.no_bytes_) logits[id] = kNegInf;
    for (unsigned b0 = 0; b0 < 256; ++b0) {
      JsonRecognizer first = rec_;
      const bool first_ok = first.feed(static_cast<unsigned char>(b0));
      const bool plain = first.in_plain_string();
      for (uint32_t i = ix.first_group_[b0]; i < ix.first_group_[b0 + 1]; ++i) {
        const int32_t id = ix.by_first_[i];
        if (!open(id)) continue;
        if (first_ok &&
            ((plain && ix.has(id, JsonVocabIndex::kPlainTail)) || rest_accepted(first, id)))
          ++allowed;
        else
          logits[id] = kNegInf;
      }
    }
    return allowed;
  }
  // Elsewhere few tokens stay: find them (dropping whole groups by their first, then second
  // byte), set them aside, clear the row in one sweep and put them back.
  size_t n_kept = 0;
  for (unsigned b0 = 0; b0 < 256; ++b0) {
    JsonRecognizer first = rec_;
    if (!first.feed(static_cast<unsigned char>(b0))) continue;
    const uint32_t* g = ix.group_.data() + b0 * 257u;
    for (uint32_t i = g[0]; i < g[1]; ++i) {  // the one-byte token
      const int32_t id = ix.by_group_[i];
      if (open(id)) kept_[n_kept++] = {id, logits[id]};
    }
    for (unsigned b1 = 0; b1 < 256; ++b1) {
      if (g[1 + b1] == g[2 + b1]) continue;
      JsonRecognizer second = first;
      if (!second.feed(static_cast<unsigned char>(b1))) continue;
      for (uint32_t i = g[1 + b1]; i < g[2 + b1]; ++i) {
        const int32_t id = ix.by_group_[i];
        if (open(id) && rest_accepted(first, id)) kept_[n_kept++] = {id, logits[id]};
      }
    }
  }
  std::fill(logits, logits + n_vocab, kNegInf);
  for (size_t i = 0; i < n_kept; ++i) logits[kept_[i].id] = kept_[i].logit;
  return n_kept;
}

bool JsonTokenFilter::accept(int32_t token) {
  const JsonVocabIndex& ix = *index_;
  if (token < 0 || token >= ix.n_vocab_) return rec_.fail();
  if (ix.has(token, JsonVocabIndex::kEog)) return rec_.complete() || rec_.fail();
  const std::string_view b = ix.bytes(token);
  if (b.empty()) return rec_.fail();
  return rec_.feed(b);
}

}  // namespace hearth::engine
