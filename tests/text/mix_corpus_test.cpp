// The mix corpus (text/mix_corpus.h): each cleaner on small inputs, the hash split and cap, dpkg package lookup, and
// build_mix end to end on a synthetic package tree (--root), including its error paths. One check against a real
// package (wordnet-base) runs only where it is installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/json.h"
#include "text/corpus.h"
#include "text/mix_corpus.h"
#include "text/sha256.h"

namespace wattmoe {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MixClean, FinishDoc) {
  EXPECT_EQ(finish_doc("\n\n  \r\nfirst  \r\nsecond\t\r\n\r\n\r\nthird\rfourth\n\n \n"),
            "first\nsecond\n\n\nthird\nfourth\n");
  EXPECT_EQ(finish_doc(" \n\t\n"), "");
  EXPECT_EQ(finish_doc("no newline"), "no newline\n");
}

TEST(MixClean, StripTroff) {
  const std::string page =
      ".\\\" comment line\n"
      ".TH LS 1 2024 \"GNU\"\n"
      ".de XX\n"
      "junk inside a macro definition\n"
      "..\n"
      ".SH NAME\n"
      "ls \\- list directory contents\n"
      ".SH SYNOPSIS\n"
      ".B ls\n"
      "[\\fIOPTION\\fR]... [\\fIFILE\\fP]...\n"
      ".PP\n"
      ".BR stat (2),\n"
      ".IP \\(bu 2\n"
      "Uses \\(lqquotes\\(rq, \\*(lqstrings\\*(rq and \\[u00E9]t\\['e] \\s-1small\\s0 text\\&.\n"
      ".TP\n"
      ".B \"\\-a, \\-\\-all\"\n"
      "do not ignore entries \\\" trailing comment\n"
      ".TS\n"
      "tab(;);\n"
      "l l.\n"
      "a;b\n"
      ".TE\n";
  EXPECT_EQ(strip_troff(page),
            "\nNAME\nls - list directory contents\n\nSYNOPSIS\nls [OPTION]... [FILE]...\n\nstat(2),\n\n\u2022\n"
            "Uses \u201cquotes\u201d, \u201cstrings\u201d and \u00e9t small text.\n\n-a, --all\n"
            "do not ignore entries \na;b\n");
  // Filled text joins lines; .nf keeps them.
  EXPECT_EQ(strip_troff("The\n.B ls\nprogram\n.nf\nline one\nline two\n.fi\nfilled\nagain\n"),
            "The ls program\nline one\nline two\nfilled again\n");
  EXPECT_EQ(strip_troff(".so man3/other.3\n"), "");
}

TEST(MixClean, CleanRest) {
  const std::string rst =
      ".. _tut-intro:\n"
      "\n"
      "**********\n"
      "Introduction\n"
      "**********\n"
      "\n"
      "Call :func:`os.path.join` or :meth:`~str.split`; see :ref:`the tutorial <tut-start>`.\n"
      "Use ``len(x)`` and `Python <https://python.org>`_ here::\n"
      "\n"
      "   >>> 1 + 1\n"
      "\n"
      ".. note::\n"
      "   :class: tip\n"
      "\n"
      "   Keep this body.\n"
      ".. toctree::\n"
      "   :maxdepth: 2\n"
      "\n"
      "   intro.rst\n"
      "\n"
      "Not a non-\\ NULL value.\n"
      "Section\n"
      "-------\n";
  EXPECT_EQ(clean_rest(rst),
            "\nIntroduction\n\nCall os.path.join or str.split; see the tutorial.\nUse len(x) and Python here:\n\n"
            "   >>> 1 + 1\n\n\n   Keep this body.\n\nNot a non-NULL value.\nSection\n");
}

TEST(MixClean, WordnetGloss) {
  EXPECT_EQ(wordnet_gloss("  1 This software and database is being provided"), "");
  EXPECT_EQ(wordnet_gloss("02084071 05 n 02 dog 0 domestic_dog 0 042 @ 02083346 n 0000 | a member of the genus "
                          "Canis; \"the dog barked all night\"  "),
            "dog, domestic dog: a member of the genus Canis; \"the dog barked all night\"");
  EXPECT_EQ(wordnet_gloss("00001740 00 a 01 able(a) 0 005 | having the means  "), "able: having the means");
}

TEST(MixClean, DictdEntries) {
  // "00-database-info" at 0 (skipped), "apple" at 10 length 6, "Apple" pointing at the same entry (deduplicated),
  // "pear" at 16 length 5 listed before apple (documents come in offset order), a second "pear" entry at 21.
  const std::string dict = "info text\napple\npear\npear2";
  const std::string index = "00-database-info\tA\tK\npear\tQ\tF\napple\tK\tG\nApple\tK\tG\npear\tV\tF\n";
  std::vector<MixDoc> d = dictd_entries(index, dict);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].key, "apple");
  EXPECT_EQ(d[0].text, "apple\n");
  EXPECT_EQ(d[1].key, "pear");
  EXPECT_EQ(d[1].text, "pear\n");
  EXPECT_EQ(d[2].key, "pear#1");
  EXPECT_EQ(d[2].text, "pear2");
  EXPECT_NE(error_of([&] { dictd_entries("word\tA\n", dict); }).find("index line 1"), std::string::npos);
  EXPECT_NE(error_of([&] { dictd_entries("word\tZ\tZ\n", dict); }).find("bad offset or length for \"word\""),
            std::string::npos);
}

TEST(MixClean, AustenChapters) {
  std::vector<MixDoc> d = austen_chapters("\001emma\nEMMA\n\nCHAPTER I\nEmma Woodhouse.\nCHAPTER II\nMr. Weston.\n"
                                          "\001persuasion\nChapter 1\nSir Walter.\n");
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[0].key, "emma/0");
  EXPECT_EQ(d[0].text, "EMMA\n\n");
  EXPECT_EQ(d[2].key, "emma/2");
  EXPECT_EQ(d[2].text, "CHAPTER II\nMr. Weston.\n");
  EXPECT_EQ(d[3].key, "persuasion/0");
  EXPECT_EQ(d[4].key, "persuasion/1");
  EXPECT_THROW(austen_chapters("text\n"), Error);
}

TEST(MixSplit, HashSplitIsStableAndNinetyFiveFive) {
  int n[3] = {0, 0, 0};
  for (int i = 0; i < 20000; ++i) ++n[int(mix_split("d", "doc" + std::to_string(i)))];
  EXPECT_NEAR(n[0], 18000, 300);
  EXPECT_NEAR(n[1], 1000, 150);
  EXPECT_NEAR(n[2], 1000, 150);
  // A pure function of (domain, key): the same everywhere, and the domain is part of it.
  EXPECT_EQ(mix_split("man", "man1/ls.1"), mix_split("man", "man1/ls.1"));
  int differ = 0;
  for (int i = 0; i < 200; ++i) differ += mix_split("a", std::to_string(i)) != mix_split("b", std::to_string(i));
  EXPECT_GT(differ, 5);
  // Pinned: sha256("wattmoe.mix/d/x")'s first 8 bytes mod 100 (changing the rule changes every corpus).
  std::string h = sha256_hex("wattmoe.mix/d/x");
  uint64_t b = std::stoull(h.substr(0, 16), nullptr, 16) % 100;
  EXPECT_EQ(int(mix_split("d", "x")), b < 90 ? 0 : b < 95 ? 1 : 2);
}

TEST(MixSplit, CapKeepsAStableHashSample) {
  std::vector<MixDoc> docs;
  for (int i = 0; i < 100; ++i) docs.push_back({"k" + std::to_string(i), std::string(10, 'x')});
  EXPECT_EQ(mix_cap("d", docs, 1000).size(), 100u);  // everything fits
  std::vector<size_t> kept = mix_cap("d", docs, 255);
  ASSERT_EQ(kept.size(), 25u);
  EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
  EXPECT_NE(kept.back() - kept.front(), 24u);  // a sample, not the first 25
  // The kept ones have the 25 smallest ranks.
  std::vector<uint64_t> ranks;
  for (auto& d : docs) ranks.push_back(mix_cap_rank("d", d.key));
  std::vector<uint64_t> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i : kept) EXPECT_LE(ranks[i], sorted[24]);
  // A document too big to fit is passed over, the smaller ones after it still fill the cap.
  docs[kept[0]].text.assign(300, 'y');
  EXPECT_EQ(mix_cap("d", docs, 255).size(), 25u);
}

// A fake system: dpkg lists and the files they name, under a temporary root.
struct FakeRoot {
  fs::path root = fs::temp_directory_path() / ("wattmoe_mixroot_" + std::to_string(::getpid()));
  FakeRoot() { fs::remove_all(root); }
  ~FakeRoot() { fs::remove_all(root); }
  void file(const std::string& path, const std::string& text) {
    fs::create_directories((root / path.substr(1)).parent_path());
    std::ofstream(root / path.substr(1), std::ios::binary) << text;
  }
  void package(const std::string& name, const std::vector<std::string>& files) {
    std::string list = "/.\n/usr\n";
    for (auto& f : files) list += f + "\n";
    file("/var/lib/dpkg/info/" + name + ".list", list);
    file("/usr/share/doc/" + name.substr(0, name.find(':')) + "/copyright",
         "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: "
         "GPL-2+\n");
  }
  // 60 headers (one not UTF-8) for domain c; wordnet with 100 synsets.
  void standard() {
    std::vector<std::string> hs;
    for (int i = 0; i < 60; ++i) {
      hs.push_back("/usr/include/h" + std::to_string(i) + ".h");
      file(hs.back(), "int f" + std::to_string(i) + "(void);   \r\n");
    }
    file("/usr/include/latin1.h", "/* caf\xe9 */\n");
    hs.push_back("/usr/include/latin1.h");
    package("libc6-dev:amd64", hs);
    package("linux-libc-dev:amd64", {});
    std::string noun = "  1 licence header\n";
    for (int i = 0; i < 100; ++i)
      noun += fmt::format("{:08} 05 n 01 word_{} 0 000 | gloss number {}\n", 1000 + i, i, i);
    for (const char* pos : {"noun", "verb", "adj", "adv"})
      file(std::string("/usr/share/wordnet/data.") + pos, std::string(pos) == "noun" ? noun : "");
    package("wordnet-base", {"/usr/share/wordnet/data.noun", "/usr/share/wordnet/data.verb"});
    file("/usr/share/doc/wordnet-base/copyright", "Free-form text.\nLicense: in prose, not a short name\n");
  }
};

const MixDomain& domain(const std::string& name) {
  for (auto& d : mix_domains())
    if (d.name == name) return d;
  throw std::runtime_error("no domain " + name);
}

TEST(MixPackages, MissingPackageNamesTheAptCommand) {
  FakeRoot r;
  r.file("/var/lib/dpkg/info/other.list", "/usr\n");
  std::string e = error_of([&] { package_files(r.root.string(), domain("gcide")); });
  EXPECT_NE(e.find("domain gcide: the Debian package dict-gcide is not installed"), std::string::npos) << e;
  EXPECT_NE(e.find("apt-get install -y dict-gcide"), std::string::npos) << e;
  e = error_of([&] { package_files(r.root.string(), domain("man")); });
  EXPECT_NE(e.find("apt-get install -y manpages"), std::string::npos) << e;
}

TEST(MixPackages, VersionedPackagesPickTheNewest) {
  FakeRoot r;
  r.file("/usr/lib/python3.9/old.py", "x = 1\n");
  r.file("/usr/lib/python3.11/new.py", "y = 2\n");
  r.package("libpython3.9-minimal:amd64", {"/usr/lib/python3.9", "/usr/lib/python3.9/old.py"});
  r.package("libpython3.11-minimal:amd64", {"/usr/lib/python3.11", "/usr/lib/python3.11/new.py"});
  r.package("libpython3.11-stdlib:amd64", {"/usr/lib/python3.11/missing.py"});  // listed, not present: dropped
  std::vector<std::string> resolved;
  EXPECT_EQ(package_files(r.root.string(), domain("python"), &resolved),
            std::vector<std::string>{"/usr/lib/python3.11/new.py"});
  EXPECT_EQ(resolved, (std::vector<std::string>{"libpython3.11-minimal", "libpython3.11-stdlib"}));
}

TEST(MixBuild, SyntheticTreeEndToEnd) {
  FakeRoot r;
  r.standard();
  fs::path out = r.root / "out";
  MixOptions o{out.string(), r.root.string(), {"wordnet", "c"}, {"code"}, 1 << 20};
  std::vector<MixDomainResult> res = build_mix(o);
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(res[0].name, "wordnet");  // table order, not the order asked for
  EXPECT_EQ(res[0].documents, 100u);
  EXPECT_EQ(res[1].name, "c");
  EXPECT_EQ(res[1].documents, 60u);
  EXPECT_EQ(res[1].skipped, 1u);
  Json m = read_json_file((out / "mix" / "manifest.json").string());
  EXPECT_EQ(m["schema"], "wattmoe.mix/1");
  EXPECT_EQ(m["train"]["label"], "code");
  EXPECT_EQ(m["train"]["domains"], Json::array({"c"}));
  EXPECT_EQ(m["domains"][0]["packages"][0]["licence"], "see /usr/share/doc/wordnet-base/copyright");
  EXPECT_EQ(m["domains"][0]["packages"][0]["version"], "unknown");  // no dpkg status file under the root
  const Json& c = m["domains"][1];
  EXPECT_EQ(c["kind"], "code");
  EXPECT_EQ(c["packages"][0]["name"], "libc6-dev");
  EXPECT_EQ(c["packages"][0]["licence"], "GPL-2+");
  EXPECT_EQ(c["skipped_non_utf8"], 1);
  EXPECT_EQ(c["skipped_examples"], Json::array({"latin1.h"}));
  uint64_t sum = 0;
  for (const char* s : {"train", "val", "test"}) {
    std::string text = read_text_file((out / "mix" / "c" / (std::string(s) + ".txt")).string());
    EXPECT_EQ(c["files"][s]["sha256"], sha256_hex(text)) << s;
    EXPECT_EQ(text.find("\r"), std::string::npos);
    EXPECT_EQ(text.find("   \n"), std::string::npos);
    sum += text.size();
  }
  EXPECT_EQ(c["bytes"], sum);
  EXPECT_EQ(read_text_file((out / "mix" / "code.train.txt").string()),
            read_text_file((out / "mix" / "c" / "train.txt").string()));
  std::string wn;
  for (const char* s : {"train", "val", "test"})
    wn += read_text_file((out / "mix" / "wordnet" / (std::string(s) + ".txt")).string());
  EXPECT_NE(wn.find("word 5: gloss number 5\n"), std::string::npos);  // one line a synset, no blank lines
  EXPECT_EQ(wn.find("\n\n"), std::string::npos);
  EXPECT_EQ(count_lines(wn), 100u);

  // Rebuilding gives the same bytes and replaces the previous corpus.
  std::string before = read_text_file((out / "mix" / "manifest.json").string());
  build_mix(o);
  EXPECT_EQ(read_text_file((out / "mix" / "manifest.json").string()), before);
  for (auto& e : fs::directory_iterator(out)) EXPECT_EQ(e.path().filename(), "mix");  // no temporaries left
}

TEST(MixBuild, ErrorsLeaveNothingHalfWritten) {
  FakeRoot r;
  r.standard();
  fs::path out = r.root / "out";
  MixOptions o{out.string(), r.root.string(), {"wordnet"}, {"reference"}, 1 << 20};
  build_mix(o);
  const std::string before = read_text_file((out / "mix" / "manifest.json").string());
  auto only_mix_left = [&] {
    for (auto& e : fs::directory_iterator(out)) EXPECT_EQ(e.path().filename(), "mix");
    EXPECT_EQ(read_text_file((out / "mix" / "manifest.json").string()), before);  // the previous corpus is intact
  };
  o.domains = {"wordnet", "gcide"};  // gcide fails after wordnet was written to the temporary directory
  EXPECT_NE(error_of([&] { build_mix(o); }).find("apt-get install -y dict-gcide"), std::string::npos);
  only_mix_left();
  o.domains = {"c"};  // every header removed: an empty domain
  for (int i = 0; i < 60; ++i) fs::remove(r.root / ("usr/include/h" + std::to_string(i) + ".h"));
  o.train = {"code"};
  EXPECT_NE(error_of([&] { build_mix(o); }).find("domain c: no documents with text"), std::string::npos);
  only_mix_left();
  r.file("/usr/include/h0.h", "int only_one;\n");  // one document: val and test would be empty
  std::string e = error_of([&] { build_mix(o); });
  EXPECT_NE(e.find("domain c: the"), std::string::npos) << e;
  EXPECT_NE(e.find("split is empty (1 documents"), std::string::npos) << e;
  only_mix_left();
  o.domains = {"nope"};
  EXPECT_NE(error_of([&] { build_mix(o); }).find("--domains: unknown domain 'nope' (known: kjv, fortunes"),
            std::string::npos);
  o.domains = {"wordnet"};
  o.train = {"prose"};
  EXPECT_NE(error_of([&] { build_mix(o); }).find("--train: 'prose' names no domain or kind"), std::string::npos);
  only_mix_left();
}

// The one check against a real package, where wordnet-base is installed (not in CI; about a second).
TEST(MixBuild, RealWordnet) {
  if (!fs::exists("/var/lib/dpkg/info/wordnet-base.list")) GTEST_SKIP() << "wordnet-base not installed";
  fs::path out = fs::temp_directory_path() / ("wattmoe_mixreal_" + std::to_string(::getpid()));
  MixOptions o{out.string(), "/", {"wordnet"}, {"wordnet"}, 64 << 20};
  std::vector<MixDomainResult> res = build_mix(o);
  EXPECT_GT(res[0].documents, 100000u);  // WordNet 3.0 has 117659 synsets
  std::string all;
  for (const char* s : {"train", "val", "test"})
    all += read_text_file((out / "mix" / "wordnet" / (std::string(s) + ".txt")).string());
  EXPECT_NE(all.find("dog, domestic dog, Canis familiaris: a member of the genus Canis"), std::string::npos);
  Json m = read_json_file((out / "mix" / "manifest.json").string());
  EXPECT_NE(m["domains"][0]["packages"][0]["version"], "unknown");
  fs::remove_all(out);
}

}  // namespace
}  // namespace wattmoe
