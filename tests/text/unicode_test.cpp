// UTF-8 handling, character classes, NFC and the hand-written split patterns.
#include <gtest/gtest.h>

#include "text/regex_split.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

TEST(Utf8, LossyReplacesMaximalInvalidSubparts) {
  EXPECT_EQ(utf8::lossy("abc"), "abc");
  EXPECT_EQ(utf8::lossy("a\xFF" "b"), "a\uFFFD" "b");
  EXPECT_EQ(utf8::lossy("\xE6\x97"), "\uFFFD");          // truncated 3-byte sequence: one replacement
  EXPECT_EQ(utf8::lossy("\xE6\x97z"), "\uFFFDz");
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate: each byte on its own
  EXPECT_EQ(utf8::lossy("\xC0\xAF"), "\uFFFD\uFFFD");              // overlong
  EXPECT_EQ(utf8::lossy("\xF0\x9F\x98"), "\uFFFD");
  EXPECT_TRUE(utf8::valid("\xF0\x9F\x98\x80"));
  EXPECT_EQ(utf8::find_invalid("ok\xF5"), 2u);
  EXPECT_EQ(utf8::encode(utf8::decode("h\u00e9\u65e5\U0001F600")), "h\u00e9\u65e5\U0001F600");
}

TEST(Unicode, Classes) {
  EXPECT_TRUE(unicode::is_letter(U'é'));
  EXPECT_TRUE(unicode::is_letter(U'日'));
  EXPECT_TRUE(unicode::is_letter(U'ſ'));
  EXPECT_FALSE(unicode::is_letter(U'1'));
  EXPECT_FALSE(unicode::is_letter(0x301));  // a combining mark is \p{M}, not \p{L}
  EXPECT_TRUE(unicode::is_number(U'½'));
  EXPECT_TRUE(unicode::is_number(U'٣'));
  EXPECT_TRUE(unicode::is_number(U'Ⅻ'));
  EXPECT_TRUE(unicode::is_space(0xA0));
  EXPECT_TRUE(unicode::is_space(0x3000));
  EXPECT_FALSE(unicode::is_space(0x200B));  // zero width space is not White_Space
  EXPECT_FALSE(unicode::is_letter(U'😀'));
}

TEST(Unicode, Nfc) {
  EXPECT_EQ(unicode::nfc("e\u0301"), "\u00e9");
  EXPECT_EQ(unicode::nfc("A\u030a"), "\u00c5");
  EXPECT_EQ(unicode::nfc("\u1e9b\u0323"), "\u1e9b\u0323");    // UAX #15 example: long s with dot above + dot below
  EXPECT_EQ(unicode::nfc("\u1100\u1161\u11a8"), "\uac01");    // Hangul L V T
  EXPECT_EQ(unicode::nfc("\u212b"), "\u00c5");                // angstrom sign is a singleton
  EXPECT_EQ(unicode::nfc("a\u0323\u0302"), "\u1ead");  // a + dot below + circumflex -> ậ
  EXPECT_EQ(unicode::nfc("a\u0302\u0323"), "\u1ead");  // marks in the other order: reordered first
  EXPECT_EQ(unicode::nfc("plain ascii"), "plain ascii");
}

std::vector<std::string> split(SplitRegex re, const std::string& s) {
  std::vector<std::string> out;
  for (auto [b, e] : regex_matches(re, s)) out.push_back(s.substr(b, e - b));
  return out;
}

TEST(RegexSplit, Gpt2) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(SplitRegex::Gpt2, "Hello world's 123 !!  x\n\n"),
            (V{"Hello", " world", "'s", " 123", " !!", " ", " x", "\n\n"}));
  EXPECT_EQ(split(SplitRegex::Gpt2, "I'M"), (V{"I", "'", "M"}));  // case-sensitive contractions
}

TEST(RegexSplit, Llama3AndQwen2) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(SplitRegex::Llama3, "I'M 12345 (x) \n\n  y"), (V{"I", "'M", " ", "123", "45", " (", "x", ")", " \n\n", " ", " y"}));
  EXPECT_EQ(split(SplitRegex::Qwen2, "a 123"), (V{"a", " ", "1", "2", "3"}));
  EXPECT_EQ(split(SplitRegex::Llama3, "x...\n\ny"), (V{"x", "...\n\n", "y"}));
  EXPECT_TRUE(known_split_regex(kQwen2Pattern));
  EXPECT_FALSE(known_split_regex("\\w+"));
}

}  // namespace
}  // namespace wattmoe
