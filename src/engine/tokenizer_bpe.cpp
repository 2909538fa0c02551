#include "engine/tokenizer_bpe.h"

#include <array>
#include <optional>
#include <queue>
#include <unordered_map>

#include "engine/tokenizer_unicode.h"
#include "engine/tokenizer_vocab.h"

namespace hearth::engine::detail {

namespace {

using unicode::SplitPass;

struct PreConfig {
  std::vector<SplitPass> passes;
  bool ignore_merges = false;  // a piece that is a whole token is taken as is
  bool clean_spaces = true;
  bool add_bos = false;
};

bool one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  for (std::string_view n : names)
    if (s == n) return true;
  return false;
}

// The pre-tokenizer passes llama.cpp runs for each tokenizer.ggml.pre name.
std::optional<PreConfig> pre_config(std::string_view pre) {
  PreConfig c;
  if (pre.empty() || pre == "default") {
    c.passes = {SplitPass::kPunctRuns, SplitPass::kGpt2, SplitPass::kNumberRuns,
                SplitPass::kAsciiDigits3};
  } else if (one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                          "midm-2.0", "lfm2"})) {
    c.passes = {SplitPass::kLlama3};
    c.ignore_merges = true;
    c.add_bos = true;
  } else if (one_of(pre, {"dbrx", "smaug-bpe"})) {
    c.passes = {SplitPass::kLlama3};
  } else if (one_of(pre, {"smollm", "command-r"})) {
    c.passes = {SplitPass::kEachNumber, SplitPass::kGpt2};
    c.clean_spaces = false;
  } else if (one_of(pre, {"starcoder", "refact", "codeshell", "exaone", "minerva-7b"})) {
    c.passes = {SplitPass::kEachNumber, SplitPass::kGpt2};
  } else if (one_of(pre, {"gpt2", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
                          "jina-v2-de", "mpt", "olmo", "jais", "exaone4"})) {
    c.passes = {SplitPass::kGpt2};
  } else if (one_of(pre, {"trillion"})) {
    c.passes = {SplitPass::kGpt2};
    c.clean_spaces = false;
  } else if (one_of(pre, {"qwen2", "deepseek-r1-qwen", "hunyuan"})) {
    c.passes = {SplitPass::kQwen2};
    c.clean_spaces = false;
  } else if (one_of(pre, {"stablelm2", "megrez"})) {
    c.passes = {SplitPass::kQwen2};
  } else {
    return std::nullopt;
  }
  return c;
}

struct Merge {
  int32_t rank;
  int32_t result;  // id of the merged text, -1 when the vocabulary lacks it
};

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

class BpeTokenizer final : public VocabTokenizer {
 public:
  BpeTokenizer(Vocab vocab, PreConfig cfg, std::unordered_map<uint64_t, Merge> merges)
      : VocabTokenizer(std::move(vocab)), cfg_(std::move(cfg)), merges_(std::move(merges)) {
    for (int b = 0; b < 256; ++b) {
      byte_token_[b] = vocab_.find(std::string(1, static_cast<char>(b)));
      image_token_[b] = vocab_.find(unicode::byte_to_unicode(static_cast<uint8_t>(b)));
    }
  }

 protected:
  void encode_fragment(std::string_view text, bool /*after_special*/,
                       std::vector<int32_t>& out) const override {
    const std::vector<uint32_t> cpts = unicode::decode_utf8(text);
    std::vector<size_t> segments{cpts.size()};
    for (SplitPass pass : cfg_.passes) segments = unicode::split(cpts, segments, pass);

    Scratch scratch;
    std::string utf8, word;
    size_t start = 0;
    for (size_t len : segments) {
      utf8.clear();
      for (size_t i = start; i < start + len; ++i) unicode::append_utf8(utf8, cpts[i]);
      start += len;
      word.clear();
      for (char ch : utf8) word += unicode::byte_to_unicode(static_cast<uint8_t>(ch));
      encode_word(utf8, word, scratch, out);
    }
  }

  // llama.cpp's llama_decode_text: each code point of the token text back to its byte.
  std::string normal_piece(int32_t id) const override {
    const std::string& text = vocab_.text[id];
    std::string out;
    for (uint32_t cpt : unicode::decode_utf8(text)) {
      const int b = unicode::unicode_to_byte(cpt);
      if (b >= 0) {
        out.push_back(static_cast<char>(b));
        continue;
      }
      std::string utf8;
      unicode::append_utf8(utf8, cpt);
      out += "[UNK_BYTE_0x";
      for (char c : utf8) out += fmt::format("{:02x}", static_cast<uint8_t>(c));
      out += text + "]";
    }
    return out;
  }

 private:
  struct Symbol {
    uint32_t start, n;
    int32_t id;  // vocabulary id of the symbol's text, -1 if none
    int32_t prev, next;
  };
  struct Bigram {
    int32_t rank;
    int32_t left, right;
    uint32_t left_n, right_n;
  };
  struct Later {  // priority: lower rank, then leftmost
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
  };
  struct Scratch {
    std::vector<Symbol> symbols;
    std::vector<Bigram> heap;
  };

  // `word` is `raw` with each byte replaced by its GPT-2 image (one symbol per byte).
  void encode_word(const std::string& raw, const std::string& word, Scratch& s,
                   std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (cfg_.ignore_merges) {
      if (const int32_t id = vocab_.find(word); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    auto& sym = s.symbols;
    sym.clear();
    uint32_t off = 0;
    for (size_t k = 0; k < raw.size(); ++k) {
      const auto b = static_cast<uint8_t>(raw[k]);
      const auto n = static_cast<uint32_t>(unicode::byte_to_unicode(b).size());
      const auto idx = static_cast<int32_t>(k);
      sym.push_back({off, n, image_token_[b], idx - 1, k + 1 == raw.size() ? -1 : idx + 1});
      off += n;
    }

    auto& heap = s.heap;
    heap.clear();
    auto add_bigram = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0 || sym[left].id < 0 || sym[right].id < 0) return;
      auto it = merges_.find(pair_key(sym[left].id, sym[right].id));
      if (it == merges_.end()) return;
      heap.push_back({it->second.rank, left, right, sym[left].n, sym[right].n});
      std::push_heap(heap.begin(), heap.end(), Later{});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) add_bigram(i - 1, i);

    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), Later{});
      const Bigram b = heap.back();
      heap.pop_back();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      // Stale when either side has been merged since the pair was queued.
      if (l.n != b.left_n || r.n != b.right_n || l.n == 0 || r.n == 0) continue;
      l.id = merges_.at(pair_key(l.id, r.id)).result;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      add_bigram(l.prev, b.left);
      add_bigram(b.left, l.next);
    }

    for (int32_t i = 0; i >= 0; i = sym[i].next) {
      const Symbol& x = sym[i];
      if (x.n == 0) continue;
      if (x.id >= 0) {
        out.push_back(x.id);
        continue;
      }
      // No such token: its bytes, each where a one-byte token exists (as llama.cpp).
      for (uint32_t k = 0; k < x.n; ++k) {
        const int32_t id = byte_token_[static_cast<uint8_t>(word[x.start + k])];
        if (id >= 0) out.push_back(id);
      }
    }
  }

  PreConfig cfg_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_token_{};   // token whose text is the raw byte
  std::array<int32_t, 256> image_token_{};  // token whose text is the byte's GPT-2 image
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(const format::GgufFile& gguf) {
  const std::string pre(gguf.get_string("tokenizer.ggml.pre").value_or(""));
  std::optional<PreConfig> cfg = pre_config(pre);
  if (!cfg) {
    return make_error(
        "{}: unknown pre-tokenizer '{}' (tokenizer.ggml.pre); supported include "
        "default, gpt-2, llama-bpe, qwen2, smollm",
        gguf.name(), pre);
  }
  VocabDefaults defaults;
  defaults.bos = 11;  // llama.cpp's defaults for BPE vocabularies
  defaults.eos = 11;
  defaults.add_bos = cfg->add_bos;
  defaults.clean_spaces = cfg->clean_spaces;
  Expected<Vocab> vocab = load_vocab(gguf, defaults);
  if (!vocab) return Error{vocab.error()};
  vocab->model = "gpt2";
  vocab->pre = pre;

  const std::vector<std::string_view>* lines = gguf.get_string_array("tokenizer.ggml.merges");
  if (!lines) {
    return make_error(
        "{}: tokenizer.ggml.merges is missing or not an array of strings; a gpt2 "
        "tokenizer needs its merges",
        gguf.name());
  }
  std::unordered_map<uint64_t, Merge> merges;
  merges.reserve(lines->size());
  for (size_t i = 0; i < lines->size(); ++i) {
    const std::string_view line = (*lines)[i];
    const size_t space = line.size() > 1 ? line.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos) {
      return make_error(
          "{}: tokenizer.ggml.merges[{}] = '{}' is not two tokens separated by a "
          "space",
          gguf.name(), i, line);
    }
    const std::string_view left = line.substr(0, space), right = line.substr(space + 1);
    const int32_t l = vocab->find(left), r = vocab->find(right);
    if (l < 0 || r < 0) {
      return make_error(
          "{}: tokenizer.ggml.merges[{}] = '{}' names '{}', which is not in the "
          "vocabulary",
          gguf.name(), i, line, l < 0 ? left : right);
    }
    const int32_t result = vocab->find(std::string(left) + std::string(right));
    merges.emplace(pair_key(l, r), Merge{static_cast<int32_t>(i), result});
  }

  auto tok = std::make_unique<BpeTokenizer>(std::move(*vocab), std::move(*cfg), std::move(merges));
  tok->finish_load();
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace hearth::engine::detail
