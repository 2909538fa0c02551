// libFuzzer target for JSON mode (engine/json_constraint.h). Must never crash, hang or leak,
// and aborts when an invariant breaks:
//   1. The recogniser, fed the input byte by byte: a refusal is final; from every accepted
//      prefix some byte is accepted unless the document is complete (no dead ends); when
//      it accepts the whole input as complete, nlohmann::json parses it as an object.
//   2. The token filter over a vocabulary cut from the input (pieces separated by 0xff,
//      a byte that never occurs in JSON text; up to the first 0xfe byte), driven by the
//      rest of the input (each byte picks one of the allowed tokens): mask() keeps exactly
//      the tokens a byte-by-byte walk accepts, and accept() takes every kept token.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "../tests/support/fake_tokenizer.h"
#include "engine/json_constraint.h"

namespace {

using hearth::engine::JsonLimits;
using hearth::engine::JsonRecognizer;
using hearth::engine::JsonTokenFilter;

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_recognizer(std::string_view in, JsonLimits limits) {
  JsonRecognizer r(limits);
  bool refused = false;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!refused && !r.complete() && i < 512) {  // no dead ends (bounded: 256 probes a byte)
      bool any = false;
      for (unsigned b = 0; b < 256 && !any; ++b) {
        JsonRecognizer t = r;
        any = t.feed(static_cast<unsigned char>(b));
      }
      check(any);
    }
    const bool ok = r.feed(static_cast<unsigned char>(in[i]));
    check(!(refused && ok));
    refused = refused || !ok;
  }
  if (!refused && r.complete()) {
    const auto j = nlohmann::json::parse(in, nullptr, false);
    check(!j.is_discarded() && j.is_object());
  }
}

void fuzz_filter(std::string_view vocab, std::string_view choices, JsonLimits limits) {
  std::vector<std::string> pieces = {"<eos>", "{", "}", "\"", ":", ",", "[", "]", "0", " "};
  size_t start = 0;
  for (size_t i = 0; i <= vocab.size() && pieces.size() < 256; ++i) {
    if (i == vocab.size() || static_cast<unsigned char>(vocab[i]) == 0xff) {
      if (i > start) pieces.emplace_back(vocab.substr(start, i - start));
      start = i + 1;
    }
  }
  const hearth::test_support::FakeTokenizer tok(pieces, 1);  // token 0 ends generation
  JsonTokenFilter f(tok, limits);
  std::vector<float> logits(pieces.size());
  for (unsigned char c : choices) {
    std::fill(logits.begin(), logits.end(), 0.0f);
    const size_t allowed = f.mask(logits.data());
    std::vector<int32_t> kept;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) {
      JsonRecognizer walk = f.recognizer();
      const std::string piece = tok.token_to_piece(id, false);
      const bool ok = id == 0 ? walk.complete() : !walk.complete() && walk.feed(piece);
      check(ok == (logits[static_cast<size_t>(id)] > -std::numeric_limits<float>::infinity()));
      if (ok) kept.push_back(id);
    }
    check(kept.size() == allowed);
    if (kept.empty()) return;
    const int32_t pick = kept[c % kept.size()];
    check(f.accept(pick));
    if (pick == 0) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1u << 16)) return 0;
  JsonLimits limits;
  limits.max_depth = 1 + data[0] % 8;
  limits.max_whitespace_run = (data[0] >> 3) % 4;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  fuzz_recognizer(in, limits);
  const size_t split = in.find('\xfe');
  if (split != std::string_view::npos)
    fuzz_filter(in.substr(0, split), in.substr(split + 1, 4096), limits);
  return 0;
}
