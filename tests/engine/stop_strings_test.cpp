#include "engine/stop_strings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hearth::engine {
namespace {

// Feeds pieces in order; returns everything emitted (feeds, then flush if not stopped).
struct Run {
  std::string emitted;
  bool stopped = false;
  std::vector<std::string> per_piece;
};

Run feed_all(StopMatcher& m, const std::vector<std::string>& pieces) {
  Run r;
  for (const auto& p : pieces) {
    auto res = m.feed(p);
    r.per_piece.emplace_back(res.text);
    r.emitted += res.text;
    if (res.stopped) r.stopped = true;
  }
  if (!r.stopped) r.emitted += m.flush();
  return r;
}

TEST(StopMatcher, NoStopStringsPassesEverythingThrough) {
  StopMatcher m;
  auto r = feed_all(m, {"Hello", ", ", "world"});
  EXPECT_EQ(r.per_piece, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.emitted, "Hello, world");
}

TEST(StopMatcher, StopInsideOnePiece) {
  StopMatcher m({"</s>"});
  auto res = m.feed("abc</s>def");
  EXPECT_TRUE(res.stopped);
  EXPECT_EQ(res.text, "abc");
  EXPECT_TRUE(m.stopped());
  // Later pieces are dropped.
  auto after = m.feed("more");
  EXPECT_TRUE(after.stopped);
  EXPECT_EQ(after.text, "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, StopSplitAcrossPieces) {
  StopMatcher m({"<|im_end|>"});
  auto r = feed_all(m, {"Sure", "! <|", "im", "_end", "|>", "ignored"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "Sure! ");
  // "Sure" is released at once; " " goes out only when the stop completes.
  EXPECT_EQ(r.per_piece[0], "Sure");
  EXPECT_EQ(r.per_piece[1], "! ");
  EXPECT_EQ(r.per_piece[2], "");
  EXPECT_EQ(r.per_piece[3], "");
  EXPECT_EQ(r.per_piece[4], "");
}

TEST(StopMatcher, StopStringOneByteAtATime) {
  const std::string text = "The answer is 42.\nUser: next";
  StopMatcher m({"\nUser:"});
  std::string out;
  bool stopped = false;
  for (char c : text) {
    auto res = m.feed(std::string_view(&c, 1));
    out += res.text;
    // Nothing of the stop string is ever released.
    EXPECT_EQ(out.find('\n'), std::string::npos);
    if (res.stopped) {
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "The answer is 42.");
}

TEST(StopMatcher, HoldbackReleasedWhenMatchBreaks) {
  StopMatcher m({"STOP"});
  auto a = m.feed("go ST");
  EXPECT_FALSE(a.stopped);
  EXPECT_EQ(a.text, "go ");
  EXPECT_EQ(m.held_size(), 2u);
  auto b = m.feed("ART");  // "START" is not "STOP": the held "ST" is released
  EXPECT_FALSE(b.stopped);
  EXPECT_EQ(b.text, "START");
  EXPECT_EQ(m.held_size(), 0u);
}

TEST(StopMatcher, HoldbackReleasedAtFlush) {
  StopMatcher m({"STOP"});
  auto a = m.feed("the end STO");
  EXPECT_EQ(a.text, "the end ");
  EXPECT_EQ(m.flush(), "STO");
  EXPECT_EQ(m.held_size(), 0u);
}

TEST(StopMatcher, OverlappingPrefixRestart) {
  // "aab" must be found in "aaab" even though the first "aa" was a dead end.
  StopMatcher m({"aab"});
  auto r = feed_all(m, {"x", "a", "a", "a", "b", "y"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "xa");
}

TEST(StopMatcher, MultipleStopStringsEarliestWins) {
  StopMatcher m({"World", "lo"});
  auto res = m.feed("Hello World");
  EXPECT_TRUE(res.stopped);
  EXPECT_EQ(res.text, "Hel");

  StopMatcher m2({"###", "\n\n", "User:"});
  auto r = feed_all(m2, {"one\n", "two", "\n", "\nUser:"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "one\ntwo");
}

TEST(StopMatcher, HoldsBackLongestPossiblePrefixOfAnyStop) {
  StopMatcher m({"abc", "bcd"});
  auto a = m.feed("xxab");  // "ab" could start "abc"; "b" could start "bcd"
  EXPECT_EQ(a.text, "xx");
  auto b = m.feed("cd");  // "abc" completes first (at offset 2)
  EXPECT_TRUE(b.stopped);
  EXPECT_EQ(b.text, "");
}

TEST(StopMatcher, EmptyStopStringsIgnored) {
  StopMatcher m({"", "END"});
  EXPECT_EQ(m.stop_strings().size(), 1u);
  auto r = feed_all(m, {"abc", "deEND"});
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.emitted, "abcde");
}

TEST(StopMatcher, ResetClearsState) {
  StopMatcher m({"END"});
  (void)m.feed("aEN");
  (void)m.feed("D");
  EXPECT_TRUE(m.stopped());
  m.reset();
  EXPECT_FALSE(m.stopped());
  auto res = m.feed("fresh");
  EXPECT_EQ(res.text, "fresh");
}

TEST(StopMatcher, Utf8CharacterSplitAcrossPiecesIsHeldWhole) {
  // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80, each split across pieces.
  StopMatcher m;
  auto a = m.feed("caf\xC3");
  EXPECT_EQ(a.text, "caf");
  auto b = m.feed("\xA9 \xE2\x82");
  EXPECT_EQ(b.text, "\xC3\xA9 ");
  auto c = m.feed("\xAC\xF0");
  EXPECT_EQ(c.text, "\xE2\x82\xAC");
  auto d = m.feed("\x9F\x98");
  EXPECT_EQ(d.text, "");
  auto e = m.feed("\x80!");
  EXPECT_EQ(e.text, "\xF0\x9F\x98\x80!");
}

TEST(StopMatcher, Utf8StopString) {
  // A multi-byte stop string fed byte by byte; the text before it has multi-byte chars too.
  const std::string stop = "\xE2\x80\x94\xE2\x80\x94";  // "——"
  const std::string text = "na\xC3\xAFve \xE2\x80\x94 ok\xE2\x80\x94\xE2\x80\x94 dropped";
  StopMatcher m({stop});
  std::string out;
  bool stopped = false;
  for (char c : text) {
    auto res = m.feed(std::string_view(&c, 1));
    out += res.text;
    if (res.stopped) {
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "na\xC3\xAFve \xE2\x80\x94 ok");
}

TEST(StopMatcher, EveryEmittedChunkIsCompleteUtf8) {
  const std::string text =
      "\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87";
  for (size_t step = 1; step <= 4; ++step) {
    StopMatcher m({"\xF0\x9F\x98\x81"});  // shares a 3-byte prefix with the emoji in text
    std::string out;
    for (size_t i = 0; i < text.size(); i += step) {
      auto res = m.feed(std::string_view(text).substr(i, step));
      const std::string chunk(res.text);
      // A chunk never ends with a lead byte or in the middle of a sequence.
      if (!chunk.empty()) {
        size_t j = chunk.size();
        size_t cont = 0;
        while (j > 0 && (static_cast<unsigned char>(chunk[j - 1]) & 0xC0) == 0x80) {
          --j;
          ++cont;
        }
        ASSERT_GT(j, 0u);
        const auto lead = static_cast<unsigned char>(chunk[j - 1]);
        const size_t len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
        EXPECT_EQ(cont + 1, len) << "step " << step << " chunk ends mid-character";
      }
      out += res.text;
    }
    out += m.flush();
    EXPECT_EQ(out, text) << "step " << step;
  }
}

TEST(StopMatcher, InvalidBytesAreNotHeldForever) {
  StopMatcher m;
  auto a = m.feed("a\x80\xFF");  // stray continuation byte, never-valid byte
  EXPECT_EQ(a.text, "a\x80\xFF");
  auto b = m.feed("\xF0\x9F\x98\x80\x80\x80");  // complete emoji + stray bytes
  EXPECT_EQ(b.text, "\xF0\x9F\x98\x80\x80\x80");
}

}  // namespace
}  // namespace hearth::engine
