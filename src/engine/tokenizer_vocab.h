// The vocabulary shared by the BPE and SPM tokenizers, loaded from tokenizer.ggml.*, and
// the part of tokenization they share: special tokens are cut out of the text first
// (llama.cpp's tokenizer_st_partition), the text between them goes to the model's own
// algorithm (encode_fragment).
//
// Invariants after load: every special id (bos, eos, eot, eom, unk, pad) is -1 or a valid
// id; text.size() == score.size() == attr.size() == piece.size(); token texts are unique
// and non-empty; add_bos implies bos >= 0 and add_eos implies eos >= 0.
// Thread safety: immutable after load.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer.h"

namespace hearth::engine::detail {

// Token attributes, as llama.cpp's llama_token_attr bits.
enum TokenAttr : uint16_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1 << 0,
  kAttrUnused = 1 << 1,
  kAttrNormal = 1 << 2,
  kAttrControl = 1 << 3,
  kAttrUserDefined = 1 << 4,
  kAttrByte = 1 << 5,
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  std::string model;  // tokenizer.ggml.model
  std::string pre;    // tokenizer.ggml.pre ("" when absent)
  std::vector<std::string> text;
  std::vector<float> score;
  std::vector<uint16_t> attr;
  std::vector<std::string> piece;  // token_to_piece(id, special = true)
  TokenMap to_id;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false, clean_spaces = false;
  std::vector<uint8_t> eog;  // per id

  // Control, user-defined and unknown tokens, longest text first (ties: lower id first).
  std::vector<int32_t> special_sorted;
  // Trie over the special texts, to find which of them occur in a text in one pass.
  struct TrieNode {
    int32_t token = -1;                             // special token ending here
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  };
  std::vector<TrieNode> trie;

  int32_t find(std::string_view s) const {
    auto it = to_id.find(s);
    return it == to_id.end() ? -1 : it->second;
  }
};

// Defaults the model type gives before tokenizer.ggml.* overrides them.
struct VocabDefaults {
  int32_t bos = -1, eos = -1, unk = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false, clean_spaces = false;
};

// Reads tokens, scores, types, special ids and flags; `defaults` come from the model type
// (and pre-tokenizer). Fails on missing or malformed tokens, duplicate texts, special ids
// out of range, add_bos/add_eos without the token.
Expected<Vocab> load_vocab(const format::GgufFile& gguf, const VocabDefaults& defaults);

// The parts of Tokenizer both algorithms share; they supply encode_fragment() and the
// text of normal tokens (normal_piece).
class VocabTokenizer : public Tokenizer {
 public:
  explicit VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  // Fills the piece cache; call once after construction.
  void finish_load();

  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::string token_to_piece(int32_t id, bool special) const override;
  int32_t n_vocab() const override { return static_cast<int32_t>(vocab_.text.size()); }
  std::string_view token_text(int32_t id) const override;
  int32_t find_token(std::string_view text) const override { return vocab_.find(text); }
  int32_t bos() const override { return vocab_.bos; }
  int32_t eos() const override { return vocab_.eos; }
  bool add_bos() const override { return vocab_.add_bos; }
  bool add_eos() const override { return vocab_.add_eos; }
  bool add_space_prefix() const override { return vocab_.add_space_prefix; }
  bool clean_spaces() const override { return vocab_.clean_spaces; }
  bool is_eog(int32_t id) const override;
  bool is_control(int32_t id) const override;
  std::string_view model() const override { return vocab_.model; }
  std::string_view pre() const override { return vocab_.pre; }

  const Vocab& vocab() const { return vocab_; }

 protected:
  // Tokenizes text found between special tokens; `after_special` is true for the first
  // fragment and for one that follows a special token.
  virtual void encode_fragment(std::string_view text, bool after_special,
                               std::vector<int32_t>& out) const = 0;
  // Output bytes of a NORMAL token.
  virtual std::string normal_piece(int32_t id) const = 0;

  Vocab vocab_;

 private:
  struct Fragment {
    int32_t token;  // -1: raw text [offset, offset + length)
    size_t offset, length;
  };
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
};

}  // namespace hearth::engine::detail
