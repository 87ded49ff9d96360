// The domain-shift transforms: reproducible for a seed, noise at the asked rate, caps and shuffles that keep
// what they should.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "text/corrupt.h"

namespace wattmoe {
namespace {

std::string sample_text() {
  std::string s;
  for (int i = 0; i < 400; ++i)
    s += "And God said, Let there be light: and there was light. Numbers 3:14 and 12345!\n";
  return s;
}

TEST(CharNoise, SameSeedSameOutputOtherSeedOther) {
  std::string t = sample_text();
  Rng a(7), b(7), c(8);
  std::string x = char_noise(t, 0.1, a), y = char_noise(t, 0.1, b), z = char_noise(t, 0.1, c);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  EXPECT_NE(x, t);
}

TEST(CharNoise, RateIsWithinToleranceOfP) {
  std::string t = sample_text();  // ~31k characters
  for (double p : {0.05, 0.10, 0.20}) {
    Rng rng(derive_seed(1, "rate"));
    NoiseStats st;
    char_noise(t, p, rng, &st);
    double rate = double(st.hits) / double(st.chars);
    // Binomial: sd = sqrt(p(1-p)/n) <= 0.0023 here; 5 sd keeps the test from flaking on another seed.
    double sd = std::sqrt(p * (1 - p) / double(st.chars));
    EXPECT_NEAR(rate, p, 5 * sd) << "p=" << p;
    // Each edit about a quarter of the time (swaps at a line end turn into substitutions).
    for (size_t k : {st.deletions, st.insertions, st.swaps}) EXPECT_NEAR(double(k) / double(st.hits), 0.25, 0.05);
    EXPECT_EQ(st.substitutions + st.deletions + st.insertions + st.swaps, st.hits);
  }
}

TEST(CharNoise, KeepsLinesAndValidUtf8) {
  std::string t = "naïve café 日本語 😀\nsecond line\n\nfourth";
  Rng rng(1);
  std::string x = char_noise(t, 0.5, rng);
  EXPECT_EQ(std::count(x.begin(), x.end(), '\n'), std::count(t.begin(), t.end(), '\n'));
  Rng r0(1);
  EXPECT_EQ(char_noise(t, 0.0, r0), t);
  EXPECT_THROW(char_noise("bad\xFF", 0.1, r0), Error);
  EXPECT_THROW(char_noise(t, 1.5, r0), Error);
}

TEST(CharNoise, SubstitutionsAreKeyboardNeighbours) {
  std::string t(5000, 'g');
  Rng rng(2);
  std::string x = char_noise(t, 1.0, rng);
  for (char c : x) EXPECT_NE(std::string("gtyfhvbr").find(c), std::string::npos) << c;  // g and its neighbours
}

TEST(AllCaps, UppercasesLettersOnly) {
  EXPECT_EQ(all_caps("And God said, 'Let there be light' 3:14\n"), "AND GOD SAID, 'LET THERE BE LIGHT' 3:14\n");
  EXPECT_EQ(all_caps("café ÿ straße ωσς жё"), "CAFÉ Ÿ STRAßE ΩΣς ЖЁ");
}

TEST(ShuffleWords, PermutesWordsWithinLines) {
  std::string t = "In the beginning God created\n  the heaven and\tthe earth.\n\nAmen";
  Rng a(5), b(5);
  std::string x = shuffle_words(t, a);
  EXPECT_EQ(x, shuffle_words(t, b));
  ASSERT_EQ(x.size(), t.size());
  std::string s1 = t, s2 = x;  // same characters overall
  std::sort(s1.begin(), s1.end());
  std::sort(s2.begin(), s2.end());
  EXPECT_EQ(s1, s2);
  auto blanks = [](const std::string& s) {  // the whitespace, in order
    std::string b;
    for (char c : s)
      if (c == '\n' || c == ' ' || c == '\t') b += c;
    return b;
  };
  EXPECT_EQ(blanks(x), blanks(t));
  // Each line holds the same multiset of words.
  auto words = [](std::string line) {
    std::vector<std::string> w;
    for (size_t i = 0; i < line.size();) {
      size_t j = line.find_first_of(" \t", i);
      if (j == std::string::npos) j = line.size();
      if (j > i) w.push_back(line.substr(i, j - i));
      i = j + 1;
    }
    std::sort(w.begin(), w.end());
    return w;
  };
  EXPECT_EQ(words(x.substr(0, x.find('\n'))), words(t.substr(0, t.find('\n'))));
  // Over many lines, some order changes.
  std::string big;
  for (int i = 0; i < 50; ++i) big += "one two three four five\n";
  Rng c(9);
  EXPECT_NE(shuffle_words(big, c), big);
}

TEST(DeriveSeed, DependsOnNameAndSeed) {
  EXPECT_NE(derive_seed(0, "kjv.val.noise05"), derive_seed(0, "kjv.val.noise10"));
  EXPECT_NE(derive_seed(0, "x"), derive_seed(1, "x"));
  EXPECT_EQ(derive_seed(3, "x"), derive_seed(3, "x"));
}

}  // namespace
}  // namespace wattmoe
