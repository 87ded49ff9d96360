// serve/text_stream.h: stop strings cut the text wherever tokens split them, nothing that might start a stop string
// or end inside a UTF-8 character is sent early, and the pieces add up to the text.
#include "serve/text_stream.h"

#include <gtest/gtest.h>

namespace wattmoe {
namespace {

// Feeds s byte by byte (the byte tokenizer: one token per byte) and returns the pieces sent.
std::vector<std::string> feed(const std::string& s, const std::vector<std::string>& stop, TextStream** out = nullptr) {
  static ByteTokenizer tok;
  static std::unique_ptr<TextStream> t;
  t = std::make_unique<TextStream>(tok, stop);
  std::vector<std::string> pieces;
  for (unsigned char c : s) {
    pieces.push_back(t->push(int32_t(c)));
    if (t->stopped()) break;
  }
  pieces.push_back(t->finish());
  if (out) *out = t.get();
  return pieces;
}

std::string joined(const std::vector<std::string>& p) {
  std::string s;
  for (const std::string& x : p) s += x;
  return s;
}

TEST(TextStream, NoStopSendsEverythingAtOnce) {
  TextStream* t = nullptr;
  const auto p = feed("hello", {}, &t);
  EXPECT_EQ(p, (std::vector<std::string>{"h", "e", "l", "l", "o", ""}));
  EXPECT_EQ(t->text(), "hello");
  EXPECT_FALSE(t->stopped());
}

TEST(TextStream, StopStringIsCutAndNeverSent) {
  TextStream* t = nullptr;
  const auto p = feed("one\n\ntwo", {"\n\n"}, &t);
  EXPECT_TRUE(t->stopped());
  EXPECT_EQ(joined(p), "one");
  EXPECT_EQ(t->text(), "one");
  for (const std::string& x : p) EXPECT_EQ(x.find('\n'), std::string::npos) << "a newline went out early";
}

TEST(TextStream, PartialStopIsHeldThenReleased) {
  TextStream* t = nullptr;
  const auto p = feed("abXaby", {"abc"}, &t);
  EXPECT_FALSE(t->stopped());
  EXPECT_EQ(joined(p), "abXaby");
  EXPECT_EQ(p[0], "");    // "a" might start "abc"
  EXPECT_EQ(p[1], "");    // "ab" too
  EXPECT_EQ(p[2], "abX");
}

TEST(TextStream, EarliestOfSeveralStops) {
  TextStream* t = nullptr;
  feed("xxbcd", {"cd", "bcd"}, &t);
  EXPECT_TRUE(t->stopped());
  EXPECT_EQ(t->text(), "xx");
  feed("the end", {"end", "the"}, &t);
  EXPECT_EQ(t->text(), "");
}

TEST(TextStream, Utf8CharactersAreNotSplit) {
  const std::string s = "a\xC3\xA9z\xE2\x82\xAC!";  // a é z € !
  const auto p = feed(s, {});
  EXPECT_EQ(joined(p), s);
  for (const std::string& x : p) EXPECT_EQ(incomplete_utf8_tail(x), 0u) << "a piece ends inside a character";
  EXPECT_EQ(incomplete_utf8_tail("a\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("\x80\x80\x80\x80"), 0u);  // not UTF-8: nothing to wait for
}

}  // namespace
}  // namespace wattmoe
