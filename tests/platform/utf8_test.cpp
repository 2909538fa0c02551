// platform/utf8: the strict and loose decoders, whole-text validation and the complete
// prefix a stream may emit.
#include "platform/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace hearth::platform::utf8 {
namespace {

using namespace std::string_view_literals;

TEST(Utf8, DecodesEachLengthToItsCodePoint) {
  struct Case {
    std::string_view text;
    uint32_t code_point;
    int length;
  } cases[] = {
      {"A", 0x41, 1},
      {"\x7F", 0x7F, 1},
      {"\xC2\x80", 0x80, 2},
      {"\xC3\xA9", 0xE9, 2},
      {"\xDF\xBF", 0x7FF, 2},
      {"\xE0\xA0\x80", 0x800, 3},
      {"\xE2\x82\xAC", 0x20AC, 3},
      {"\xED\x9F\xBF", 0xD7FF, 3},
      {"\xEE\x80\x80", 0xE000, 3},
      {"\xEF\xBF\xBF", 0xFFFF, 3},
      {"\xF0\x90\x80\x80", 0x10000, 4},
      {"\xF0\x9F\x98\x80", 0x1F600, 4},
      {"\xF4\x8F\xBF\xBF", 0x10FFFF, 4},
  };
  for (const Case& c : cases) {
    for (Form form : {Form::kStrict, Form::kLoose}) {
      const Decoded d = decode(c.text, form);
      EXPECT_EQ(d.length, c.length) << c.code_point;
      EXPECT_EQ(d.code_point, c.code_point);
    }
  }
}

TEST(Utf8, DecodeReadsOnlyTheFirstSequence) {
  const Decoded d = decode("\xC3\xA9t\xC3\xA9"sv);
  EXPECT_EQ(d.length, 2);
  EXPECT_EQ(d.code_point, 0xE9u);
  EXPECT_EQ(decode("\x00x"sv).length, 1);  // NUL is a character like any other
}

TEST(Utf8, TruncatedSequenceAsksForMore) {
  for (std::string_view t : {""sv, "\xC3"sv, "\xE2"sv, "\xE2\x82"sv, "\xF0"sv, "\xF0\x9F"sv,
                             "\xF0\x9F\x98"sv, "\xE0\xA0"sv, "\xF4\x8F\xBF"sv}) {
    EXPECT_EQ(decode(t).length, -1) << t.size();
    if (!t.empty()) {
      EXPECT_FALSE(is_valid(t)) << t.size();
    }
  }
}

TEST(Utf8, TruncatedButAlreadyInvalidIsInvalid) {
  // The bytes there already rule out every completion.
  EXPECT_EQ(decode("\xE0\x80"sv).length, 0);  // overlong whatever follows
  EXPECT_EQ(decode("\xED\xA0"sv).length, 0);  // a surrogate whatever follows
  EXPECT_EQ(decode("\xF4\x90"sv).length, 0);  // past U+10FFFF whatever follows
  EXPECT_EQ(decode("\xE2x"sv).length, 0);     // no continuation byte
}

TEST(Utf8, StrictRejectsEveryMalformedClass) {
  const std::string_view bad[] = {
      "\x80"sv,              // stray continuation byte
      "\xBF"sv,              // stray continuation byte
      "\xC3x"sv,             // lead without its continuation
      "\xE2\x82x"sv,         // third byte not a continuation
      "\xF0\x9F\x98x"sv,     // fourth byte not a continuation
      "\xC0\x80"sv,          // overlong NUL
      "\xC1\xBF"sv,          // overlong U+007F
      "\xE0\x80\x80"sv,      // overlong 3-byte
      "\xE0\x9F\xBF"sv,      // overlong U+07FF
      "\xF0\x80\x80\x80"sv,  // overlong 4-byte
      "\xF0\x8F\xBF\xBF"sv,  // overlong U+FFFF
      "\xED\xA0\x80"sv,      // U+D800, high surrogate
      "\xED\xBF\xBF"sv,      // U+DFFF, low surrogate
      "\xF4\x90\x80\x80"sv,  // U+110000
      "\xF5\x80\x80\x80"sv,  // lead byte past U+10FFFF
      "\xF8\x88\x80\x80\x80"sv,
      "\xFE"sv,
      "\xFF"sv,
  };
  for (std::string_view t : bad) {
    EXPECT_EQ(decode(t).length, 0) << testing::PrintToString(std::string(t));
    EXPECT_FALSE(is_valid(t)) << testing::PrintToString(std::string(t));
    EXPECT_FALSE(is_valid(std::string("ok ") + std::string(t) + " ok"));
  }
}

TEST(Utf8, LooseAcceptsOverlongsAndSurrogatesOnly) {
  EXPECT_EQ(decode("\xC0\x80"sv, Form::kLoose).code_point, 0u);
  EXPECT_EQ(decode("\xC0\x80"sv, Form::kLoose).length, 2);
  EXPECT_EQ(decode("\xC1\xBF"sv, Form::kLoose).code_point, 0x7Fu);
  EXPECT_EQ(decode("\xE0\x80\x80"sv, Form::kLoose).code_point, 0u);
  EXPECT_EQ(decode("\xF0\x8F\xBF\xBF"sv, Form::kLoose).code_point, 0xFFFFu);
  EXPECT_EQ(decode("\xED\xA0\x80"sv, Form::kLoose).code_point, 0xD800u);
  EXPECT_EQ(decode("\xED\xA0\x80"sv, Form::kLoose).length, 3);
  // Still malformed in the loose form.
  EXPECT_EQ(decode("\xF4\x90\x80\x80"sv, Form::kLoose).length, 0);
  EXPECT_EQ(decode("\xF5\x80\x80\x80"sv, Form::kLoose).length, 0);
  EXPECT_EQ(decode("\x80"sv, Form::kLoose).length, 0);
  EXPECT_EQ(decode("\xC3x"sv, Form::kLoose).length, 0);
  EXPECT_EQ(decode("\xE2\x82"sv, Form::kLoose).length, -1);
}

TEST(Utf8, LeadNamesLengthAndSecondByteRange) {
  EXPECT_EQ(lead('a').length, 1);
  EXPECT_EQ(lead(0x80).length, 0);
  EXPECT_EQ(lead(0xC1).length, 0);
  EXPECT_EQ(lead(0xC1, Form::kLoose).length, 2);
  EXPECT_EQ(lead(0xC2).length, 2);
  const Lead e0 = lead(0xE0);
  EXPECT_EQ(e0.length, 3);
  EXPECT_EQ(e0.second_min, 0xA0);
  EXPECT_EQ(lead(0xED).second_max, 0x9F);
  EXPECT_EQ(lead(0xED, Form::kLoose).second_max, 0xBF);
  EXPECT_EQ(lead(0xF0).second_min, 0x90);
  EXPECT_EQ(lead(0xF4).second_max, 0x8F);
  EXPECT_EQ(lead(0xF4, Form::kLoose).second_max, 0x8F);
  EXPECT_EQ(lead(0xF5).length, 0);
  EXPECT_EQ(lead(0xFF, Form::kLoose).length, 0);
}

TEST(Utf8, ValidTextIsValid) {
  EXPECT_TRUE(is_valid(""));
  EXPECT_TRUE(is_valid("plain ASCII, with\ttabs\nand newlines"));
  EXPECT_TRUE(is_valid("caf\xC3\xA9 \xE2\x82\xAC \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80"));
  EXPECT_TRUE(is_valid("\xF4\x8F\xBF\xBF\xEF\xBF\xBD"));
  EXPECT_TRUE(is_valid("a\0b"sv));
}

TEST(Utf8, CompletePrefixHoldsBackACutCharacter) {
  EXPECT_EQ(complete_prefix_length(""), 0u);
  EXPECT_EQ(complete_prefix_length("abc"), 3u);
  EXPECT_EQ(complete_prefix_length("caf\xC3"), 3u);
  EXPECT_EQ(complete_prefix_length("caf\xC3\xA9"), 5u);
  EXPECT_EQ(complete_prefix_length("x\xE2\x82"), 1u);
  EXPECT_EQ(complete_prefix_length("x\xE2\x82\xAC"), 4u);
  EXPECT_EQ(complete_prefix_length("x\xF0"), 1u);
  EXPECT_EQ(complete_prefix_length("x\xF0\x9F\x98"), 1u);
  EXPECT_EQ(complete_prefix_length("x\xF0\x9F\x98\x80"), 5u);
}

TEST(Utf8, CompletePrefixJudgesByTheLeadByteAlone) {
  // Invalid bytes are not held: the reader replaces or rejects them.
  EXPECT_EQ(complete_prefix_length("a\x80"), 2u);
  EXPECT_EQ(complete_prefix_length("a\xFF"), 2u);
  EXPECT_EQ(complete_prefix_length("a\xC0"), 2u);
  EXPECT_EQ(complete_prefix_length("\x80\x80\x80\x80"), 4u);
  // A lead that announces more than follows is held, even when what follows cannot
  // complete it.
  EXPECT_EQ(complete_prefix_length("a\xE0\x80"), 1u);
  // Extra continuation bytes after a complete character are not a cut character.
  EXPECT_EQ(complete_prefix_length("\xC3\xA9\x80"), 3u);
}

}  // namespace
}  // namespace hearth::platform::utf8
