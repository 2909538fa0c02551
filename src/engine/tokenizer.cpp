#include "engine/tokenizer.h"

#include <algorithm>
#include <limits>
#include <span>

#include "engine/tokenizer_bpe.h"
#include "engine/tokenizer_spm.h"
#include "engine/tokenizer_vocab.h"
#include "platform/utf8.h"

namespace hearth::engine {

namespace detail {

namespace {

constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
constexpr std::string_view kScores = "tokenizer.ggml.scores";
constexpr std::string_view kTokenType = "tokenizer.ggml.token_type";

// llama.cpp's token types (tokenizer.ggml.token_type) to attributes.
uint16_t attr_from_type(int32_t type) {
  switch (type) {
    case 1:
      return kAttrNormal;
    case 2:
      return kAttrUnknown;
    case 3:
      return kAttrControl;
    case 4:
      return kAttrUserDefined;
    case 5:
      return kAttrUnused;
    case 6:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

// Texts llama.cpp takes as end-of-turn / end-of-generation markers when the metadata does
// not name them.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<｜end▁of▁sentence｜>",
    "<end_of_utterance>"};
constexpr std::string_view kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                             "[PAD]"};
constexpr std::string_view kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                             "<REPO>", "<reponame>"};
constexpr std::string_view kFimSepTexts[] = {"<|file_sep|>"};
constexpr std::string_view kEomTexts[] = {"<|eom_id|>"};
constexpr std::string_view kEogTexts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<|return|>",
                                          "<|call|>",
                                          "<|flush|>",
                                          "<|calls|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "</s>",
                                          "<|eom_id|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "[EOS]",
                                          "<|end_of_text|>",
                                          "<end_of_utterance>",
                                          "<eos>",
                                          "<turn|>",
                                          "<|tool_response>",
                                          "<｜end▁of▁sentence｜>",
                                          "[e~["};

Status read_special_id(const format::GgufFile& gguf, std::string_view key, size_t n_tokens,
                       int32_t& id) {
  if (id >= 0 && static_cast<size_t>(id) >= n_tokens) id = -1;  // a default past the vocab
  if (!gguf.find(key)) return Status::ok();
  const std::optional<uint64_t> v = gguf.get_uint(key);
  if (!v) return make_error("{}: {} is not a non-negative integer", gguf.name(), key);
  if (*v >= n_tokens) {
    return make_error("{}: {} = {} is out of range (vocabulary has {} tokens)", gguf.name(), key,
                      *v, n_tokens);
  }
  id = static_cast<int32_t>(*v);
  return Status::ok();
}

void build_special_index(Vocab& v) {
  for (int32_t id = 0; id < static_cast<int32_t>(v.text.size()); ++id) {
    if (v.attr[id] & (kAttrControl | kAttrUserDefined | kAttrUnknown))
      v.special_sorted.push_back(id);
  }
  std::stable_sort(v.special_sorted.begin(), v.special_sorted.end(),
                   [&](int32_t a, int32_t b) { return v.text[a].size() > v.text[b].size(); });
  v.trie.assign(1, Vocab::TrieNode{});
  for (int32_t id : v.special_sorted) {
    int32_t node = 0;
    for (char ch : v.text[id]) {
      const auto b = static_cast<uint8_t>(ch);
      auto& next = v.trie[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), b,
                                 [](const auto& e, uint8_t key) { return e.first < key; });
      if (it != next.end() && it->first == b) {
        node = it->second;
      } else {
        const auto child = static_cast<int32_t>(v.trie.size());
        next.insert(it, {b, child});
        v.trie.emplace_back();
        node = child;
      }
    }
    v.trie[node].token = id;
  }
}

}  // namespace

Expected<Vocab> load_vocab(const format::GgufFile& gguf, const VocabDefaults& defaults) {
  Vocab v;
  const std::vector<std::string_view>* tokens = gguf.get_string_array(kTokens);
  if (!tokens) {
    return make_error(
        "{}: {} is missing or not an array of strings; the file has no usable "
        "vocabulary",
        gguf.name(), kTokens);
  }
  const size_t n = tokens->size();
  if (n == 0 || n >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return make_error("{}: {} has {} entries", gguf.name(), kTokens, n);
  }

  std::vector<float> scores;
  if (const format::GgufKv* kv = gguf.find(kScores)) {
    std::optional<std::vector<float>> f;
    if (kv->type == format::GgufType::ARRAY && kv->array_type == format::GgufType::FLOAT32) {
      f = gguf.get_f32_array(kScores);
    } else if (kv->type == format::GgufType::ARRAY && kv->array_type == format::GgufType::INT32) {
      if (auto i = gguf.get_i32_array(kScores)) f = std::vector<float>(i->begin(), i->end());
    }
    if (!f) return make_error("{}: {} is not an array of float32 or int32", gguf.name(), kScores);
    if (f->size() < n) {
      return make_error("{}: {} has {} entries for {} tokens", gguf.name(), kScores, f->size(), n);
    }
    scores = std::move(*f);
  }
  std::vector<int32_t> types;
  if (gguf.find(kTokenType)) {
    auto t = gguf.get_i32_array(kTokenType);
    if (!t) return make_error("{}: {} is not an array of integers", gguf.name(), kTokenType);
    if (t->size() < n) {
      return make_error("{}: {} has {} entries for {} tokens", gguf.name(), kTokenType, t->size(),
                        n);
    }
    types = std::move(*t);
  }

  v.text.resize(n);
  v.score.assign(n, 0.0f);
  v.attr.assign(n, kAttrNormal);
  v.to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string word((*tokens)[i]);
    if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp
    auto [it, inserted] = v.to_id.emplace(word, static_cast<int32_t>(i));
    if (!inserted) {
      return make_error("{}: duplicate token in vocabulary: '{}' has ids {} and {}", gguf.name(),
                        word, it->second, i);
    }
    v.text[i] = std::move(word);
    if (!scores.empty()) v.score[i] = scores[i];
    if (!types.empty()) v.attr[i] = attr_from_type(types[i]);
  }

  v.bos = defaults.bos;
  v.eos = defaults.eos;
  v.unk = defaults.unk;
  int32_t fim_pad = -1, fim_rep = -1, fim_sep = -1;
  const std::pair<std::string_view, int32_t*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos},       {"tokenizer.ggml.eos_token_id", &v.eos},
      {"tokenizer.ggml.eot_token_id", &v.eot},       {"tokenizer.ggml.eom_token_id", &v.eom},
      {"tokenizer.ggml.unknown_token_id", &v.unk},   {"tokenizer.ggml.padding_token_id", &v.pad},
      {"tokenizer.ggml.fim_pad_token_id", &fim_pad}, {"tokenizer.ggml.fim_rep_token_id", &fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &fim_sep},
  };
  for (const auto& [key, id] : ids) {
    if (Status s = read_special_id(gguf, key, n, *id); !s) return Error{s.error()};
  }

  v.add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token").value_or(defaults.add_bos);
  v.add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token").value_or(defaults.add_eos);
  v.add_space_prefix =
      gguf.get_bool("tokenizer.ggml.add_space_prefix").value_or(defaults.add_space_prefix);
  v.clean_spaces = defaults.clean_spaces;
  if (v.add_bos && v.bos < 0) {
    return make_error("{}: tokenizer.ggml.add_bos_token is true but the model has no BOS token",
                      gguf.name());
  }
  if (v.add_eos && v.eos < 0) {
    return make_error("{}: tokenizer.ggml.add_eos_token is true but the model has no EOS token",
                      gguf.name());
  }

  // Markers found by their text, as llama.cpp does; they become control tokens.
  auto detect = [&](int32_t& id, std::span<const std::string_view> texts) {
    if (id >= 0) return;
    for (std::string_view t : texts) {
      const int32_t found = v.find(t);
      if (found >= 0) {
        id = found;
        v.attr[found] |= kAttrControl;
        return;
      }
    }
  };
  detect(v.eot, kEotTexts);
  detect(v.eom, kEomTexts);
  detect(fim_pad, kFimPadTexts);
  detect(fim_rep, kFimRepTexts);
  detect(fim_sep, kFimSepTexts);

  v.eog.assign(n, 0);
  for (std::string_view t : kEogTexts) {
    const int32_t id = v.find(t);
    if (id < 0) continue;
    v.eog[id] = 1;
    v.attr[id] |= kAttrControl;
  }
  for (int32_t id : {fim_pad, fim_rep, fim_sep, v.eos, v.eot, v.eom}) {
    if (id >= 0) v.eog[id] = 1;
  }
  for (std::string_view t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    if (const int32_t id = v.find(t); id >= 0) v.attr[id] = kAttrUserDefined;  // gpt-oss
  }

  build_special_index(v);
  return v;
}

void VocabTokenizer::finish_load() {
  const size_t n = vocab_.text.size();
  vocab_.piece.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    const uint16_t a = vocab_.attr[i];
    const std::string& t = vocab_.text[i];
    if (a & (kAttrUnknown | kAttrControl | kAttrUserDefined)) {
      vocab_.piece[i] = t;
    } else if (a & kAttrNormal) {
      vocab_.piece[i] = normal_piece(id);
    } else if (a & kAttrByte) {
      // "<0xNN>": the byte NN (llama.cpp reads the two characters at offset 3 as hex).
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      int value = 0;
      if (t.size() >= 5) {
        const int hi = hex(t[3]), lo = hex(t[4]);
        if (hi >= 0) value = lo >= 0 ? hi * 16 + lo : hi;
      }
      vocab_.piece[i] = std::string(1, static_cast<char>(value));
    }
  }
}

std::string_view VocabTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return {};
  return vocab_.text[id];
}

bool VocabTokenizer::is_eog(int32_t id) const {
  return id >= 0 && id < n_vocab() && vocab_.eog[id] != 0;
}

bool VocabTokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_vocab() && (vocab_.attr[id] & kAttrControl) != 0;
}

std::string VocabTokenizer::token_to_piece(int32_t id, bool special) const {
  if (id < 0 || id >= n_vocab()) return {};
  if (!special && (vocab_.attr[id] & (kAttrUnknown | kAttrControl))) return {};
  return vocab_.piece[id];
}

std::vector<VocabTokenizer::Fragment> VocabTokenizer::partition(std::string_view text,
                                                                bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});

  // Which special tokens occur at all: one trie walk per position.
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  std::vector<int32_t> present;
  for (size_t start = 0; start < text.size(); ++start) {
    int32_t node = 0;
    for (size_t i = start; i < text.size(); ++i) {
      const auto& next = vocab_.trie[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), bytes[i],
                                 [](const auto& e, uint8_t key) { return e.first < key; });
      if (it == next.end() || it->first != bytes[i]) break;
      node = it->second;
      if (vocab_.trie[node].token >= 0) present.push_back(vocab_.trie[node].token);
    }
  }
  if (present.empty()) return frags;
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());

  // As llama.cpp: for each special token, longest first, cut every occurrence out of the
  // raw fragments, left to right.
  std::vector<Fragment> next;
  for (int32_t id : vocab_.special_sorted) {
    if (!std::binary_search(present.begin(), present.end(), id)) continue;
    if (!parse_special && (vocab_.attr[id] & (kAttrControl | kAttrUnknown))) continue;
    const std::string& tok = vocab_.text[id];
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.length;
      while (pos < end) {
        const size_t match = text.substr(0, end).find(tok, pos);
        if (match == std::string_view::npos) break;
        if (match > pos) next.push_back({-1, pos, match - pos});
        next.push_back({id, match, tok.size()});
        pos = match + tok.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> VocabTokenizer::encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
  bool after_special = true;
  for (const Fragment& f : partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      encode_fragment(text.substr(f.offset, f.length), after_special, out);
      after_special = false;
    }
  }
  if (add_special && vocab_.add_eos) out.push_back(vocab_.eos);
  return out;
}

}  // namespace detail

Expected<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const format::GgufFile& gguf) {
  const std::optional<std::string_view> model = gguf.get_string("tokenizer.ggml.model");
  if (!model) {
    return make_error("{}: tokenizer.ggml.model is missing; the file carries no tokenizer",
                      gguf.name());
  }
  if (*model == "gpt2") return detail::make_bpe_tokenizer(gguf);
  if (*model == "llama") return detail::make_spm_tokenizer(gguf);
  return make_error("{}: tokenizer model '{}' is not supported (supported: gpt2, llama)",
                    gguf.name(), *model);
}

namespace {

// llama_detokenize's clean-up of spaces around punctuation and English contractions.
std::string clean_up_spaces(std::string t) {
  if (t.size() < 2) return t;
  std::string out;
  out.reserve(t.size());
  out.push_back(t[0]);
  for (size_t i = 1; i < t.size(); ++i) {  // " ?", " !", " .", " ,"
    const char x = t[i];
    if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) out.pop_back();
    out.push_back(x);
  }
  t.swap(out);
  out.clear();
  if (t.empty()) return t;
  out.push_back(t[0]);
  for (size_t i = 1; i < t.size(); ++i) {  // " ' " -> "'"
    const char x = t[i];
    if (x == '\'' && i + 1 < t.size() && t[i - 1] == ' ' && t[i + 1] == ' ') {
      out.pop_back();
      t[++i] = '\0';  // the next space is dropped (and no longer counts as a space)
    }
    out.push_back(x);
  }
  t.swap(out);
  out.clear();
  if (t.empty()) return t;
  out.push_back(t[0]);
  for (size_t i = 1; i < t.size(); ++i) {  // " 's", " 'm", " 're", " 've"
    const char x = t[i];
    if (t[i - 1] == ' ' && x == '\'' && i + 1 < t.size()) {
      const char x1 = t[i + 1];
      if (x1 == 's' || x1 == 'm') {
        out.pop_back();
      } else if (i + 2 < t.size() && x1 != 't' && x1 != 'd') {
        const char x2 = t[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) out.pop_back();
      }
    }
    out.push_back(x);
  }
  return out;
}

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string out;
  bool strip_space = add_space_prefix();
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, special);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  return clean_spaces() ? clean_up_spaces(std::move(out)) : out;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_to_piece(id, special_);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const int len = platform::utf8::decode(std::string_view(pending_).substr(i)).length;
    if (len < 0) break;  // wait for the rest of the character
    if (len == 0) {
      out += kReplacementUtf8;
      ++i;
      continue;
    }
    out.append(pending_, i, static_cast<size_t>(len));
    i += static_cast<size_t>(len);
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = pending_.empty() ? std::string() : std::string(kReplacementUtf8);
  pending_.clear();
  return out;
}

}  // namespace hearth::engine
