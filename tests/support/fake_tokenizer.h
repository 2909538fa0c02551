// A vocabulary given as strings, for tests and fuzz targets of code that only reads token
// bytes (engine/json_constraint.h): token i is pieces[i]. Tokens 0 .. n_no_bytes - 1 stream
// nothing (token_to_piece gives ""); token 0 ends generation, the others of them are
// control tokens. Encoding is not supported (encode gives no tokens).
// Included by tests/engine/json_constraint_test.cpp and fuzz/fuzz_json_constraint.cpp by
// relative path (the build adds only src/ to the include path).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tokenizer.h"

namespace hearth::test_support {

class FakeTokenizer : public engine::Tokenizer {
 public:
  FakeTokenizer(std::vector<std::string> pieces, int32_t n_no_bytes)
      : pieces_(std::move(pieces)), n_no_bytes_(n_no_bytes) {}
  std::vector<int32_t> encode(std::string_view, bool, bool) const override { return {}; }
  std::string token_to_piece(int32_t id, bool) const override {
    return id < n_no_bytes_ ? std::string() : pieces_[static_cast<size_t>(id)];
  }
  int32_t n_vocab() const override { return static_cast<int32_t>(pieces_.size()); }
  std::string_view token_text(int32_t id) const override {
    return pieces_[static_cast<size_t>(id)];
  }
  int32_t find_token(std::string_view) const override { return -1; }
  int32_t bos() const override { return -1; }
  int32_t eos() const override { return 0; }
  bool add_bos() const override { return false; }
  bool is_eog(int32_t id) const override { return id == 0; }
  bool is_control(int32_t id) const override { return id < n_no_bytes_; }
  std::string_view model() const override { return "fake"; }
  std::string_view pre() const override { return ""; }

 private:
  std::vector<std::string> pieces_;
  int32_t n_no_bytes_;
};

}  // namespace hearth::test_support
