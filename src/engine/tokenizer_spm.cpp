#include "engine/tokenizer_spm.h"

#include <algorithm>
#include <array>

#include "engine/tokenizer_unicode.h"
#include "engine/tokenizer_vocab.h"

namespace hearth::engine::detail {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : VocabTokenizer(std::move(vocab)) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
      int32_t id = vocab_.find(name);
      if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(b)));
      byte_token_[b] = id;
    }
  }

 protected:
  void encode_fragment(std::string_view fragment, bool after_special,
                       std::vector<int32_t>& out) const override {
    std::string text;
    text.reserve(fragment.size() + 8);
    if (vocab_.add_space_prefix && after_special) text += kSpace;
    for (char ch : fragment) {
      if (ch == ' ') {
        text += kSpace;
      } else {
        text.push_back(ch);
      }
    }
    if (text.empty()) return;

    // One symbol per UTF-8 character (by its lead byte, cut at the end of the text).
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t off = 0; off < text.size();) {
      const size_t n =
          std::min(text.size() - off, unicode::utf8_len(static_cast<uint8_t>(text[off])));
      const auto idx = static_cast<int32_t>(sym.size());
      sym.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(n), idx - 1,
                     off + n == text.size() ? -1 : idx + 1});
      off += n;
    }

    std::vector<Bigram> heap;
    auto add_bigram = [&](int32_t left, int32_t right) {
      if (left < 0 || right < 0) return;
      const std::string_view joined(text.data() + sym[left].start, sym[left].n + sym[right].n);
      const int32_t id = vocab_.find(joined);
      if (id < 0) return;
      heap.push_back({vocab_.score[id], left, right, static_cast<uint32_t>(joined.size())});
      std::push_heap(heap.begin(), heap.end(), Lower{});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) add_bigram(i - 1, i);

    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), Lower{});
      const Bigram b = heap.back();
      heap.pop_back();
      Symbol& l = sym[b.left];
      Symbol& r = sym[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;  // stale
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      add_bigram(l.prev, b.left);
      add_bigram(b.left, l.next);
    }

    // Merges only ever form vocabulary tokens, so a symbol is a token or a single
    // character the vocabulary lacks: that one goes out as byte tokens.
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
      const std::string_view piece(text.data() + sym[i].start, sym[i].n);
      const int32_t id = vocab_.find(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char ch : piece) {
        const int32_t b = byte_token_[static_cast<uint8_t>(ch)];
        if (b >= 0) {
          out.push_back(b);
        } else if (vocab_.unk >= 0) {
          out.push_back(vocab_.unk);
        }
      }
    }
  }

  std::string normal_piece(int32_t id) const override {
    const std::string& t = vocab_.text[id];
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpace.size(), kSpace) == 0) {
        out.push_back(' ');
        i += kSpace.size();
      } else {
        out.push_back(t[i++]);
      }
    }
    return out;
  }

 private:
  struct Symbol {
    uint32_t start, n;
    int32_t prev, next;
  };
  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t size;
  };
  struct Lower {  // priority: higher score, then leftmost
    bool operator()(const Bigram& a, const Bigram& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };

  std::array<int32_t, 256> byte_token_{};
};

}  // namespace

Expected<std::unique_ptr<Tokenizer>> make_spm_tokenizer(const format::GgufFile& gguf) {
  VocabDefaults defaults;
  defaults.bos = 1;  // llama.cpp's defaults for SPM vocabularies
  defaults.eos = 2;
  defaults.unk = 0;
  defaults.add_bos = true;
  defaults.add_space_prefix = true;
  Expected<Vocab> vocab = load_vocab(gguf, defaults);
  if (!vocab) return Error{vocab.error()};
  vocab->model = "llama";
  vocab->pre = std::string(gguf.get_string("tokenizer.ggml.pre").value_or("default"));
  auto tok = std::make_unique<SpmTokenizer>(std::move(*vocab));
  tok->finish_load();
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace hearth::engine::detail
