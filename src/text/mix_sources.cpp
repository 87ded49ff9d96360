// The mix corpus's domains (text/mix_corpus.h): which packages, which of their files, and how each file becomes
// documents. Paths in dpkg lists are absolute; every read prefixes the root (--root, "/" normally).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "io/json.h"
#include "text/corpus.h"
#include "text/mix_corpus.h"

namespace wattmoe {
namespace {

namespace fs = std::filesystem;

bool has_suffix(std::string_view s, std::string_view suf) { return s.ends_with(suf); }

// Contents of root+path; "*.gz" and "*.dz" through `gzip -dc`.
std::string read_source(const std::string& root, const std::string& path) {
  const std::string p = root + path;
  if (!has_suffix(p, ".gz") && !has_suffix(p, ".dz")) return read_text_file(p);
  WATTMOE_REQUIRE(file_exists(p), "{}: cannot open (no such file)", p);
  try {
    return run_program({"gzip", "-dc", "--", p}, "gzip comes with every Debian system (apt-get install -y gzip)");
  } catch (const Error& e) {
    fail("{}: cannot decompress: {}", p, e.what());
  }
}

// Files under `dir` (absolute, ending in '/') with one of the suffixes; key: the path below dir, suffix `strip`
// removed.
std::vector<std::pair<std::string, std::string>> select(const std::vector<std::string>& files, std::string_view dir,
                                                        std::initializer_list<std::string_view> suffixes,
                                                        std::string_view strip = "") {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& f : files) {
    if (!f.starts_with(dir)) continue;
    if (!std::any_of(suffixes.begin(), suffixes.end(), [&](std::string_view s) { return has_suffix(f, s); }))
      continue;
    std::string key = f.substr(dir.size());
    if (!strip.empty() && has_suffix(key, strip)) key.resize(key.size() - strip.size());
    out.emplace_back(f, key);
  }
  return out;
}

// The first directory of `files` named prefix + digits and dots ("/usr/lib/python3." -> "/usr/lib/python3.11/";
// not "/usr/share/doc/python3.11-doc/"), or "".
std::string versioned_dir(const std::vector<std::string>& files, std::string_view prefix) {
  for (auto& f : files) {
    if (!f.starts_with(prefix)) continue;
    size_t e = f.find('/', prefix.size());
    if (e == std::string::npos || e == prefix.size()) continue;
    std::string_view mid = std::string_view(f).substr(prefix.size(), e - prefix.size());
    if (std::all_of(mid.begin(), mid.end(), [](char c) { return std::isdigit((unsigned char)c) || c == '.'; }))
      return f.substr(0, e + 1);
  }
  return "";
}

std::vector<MixDoc> read_files(const std::string& root, const std::vector<std::pair<std::string, std::string>>& sel,
                               std::string (*clean)(std::string_view), const char* label) {
  std::vector<MixDoc> docs;
  for (auto& [path, key] : sel) {
    std::string text = read_source(root, path);
    docs.push_back({key, clean ? clean(text) : std::move(text)});
    if (label && docs.size() % 1000 == 0) fmt::print(stderr, "data: mix {}: {} files read\n", label, docs.size());
  }
  return docs;
}

std::vector<MixDoc> read_kjv(const std::string&, const std::vector<std::string>&) {
  std::vector<std::string> refs;
  std::vector<std::string> verses = kjv_verses(
      run_program({"bible", "-f", "Gen1:1-Rev22:21"}, "install the Debian package bible-kjv: apt-get install -y "
                                                      "bible-kjv"),
      &refs);
  std::vector<MixDoc> docs;
  for (size_t i = 0; i < verses.size(); ++i) {
    std::string chapter = refs[i].substr(0, refs[i].find(':'));
    if (docs.empty() || docs.back().key != chapter) docs.push_back({chapter, ""});
    docs.back().text += verses[i] + "\n";
  }
  return docs;
}

constexpr const char* kAustenScript =
    "e <- new.env(); for (b in c('emma', 'mansfieldpark', 'northangerabbey', 'persuasion', 'prideprejudice', "
    "'sensesensibility')) { data(list = b, package = 'janeaustenr', envir = e); cat('\\001', b, '\\n', sep = ''); "
    "writeLines(get(b, envir = e), useBytes = TRUE) }";

std::vector<MixDoc> read_austen(const std::string&, const std::vector<std::string>&) {
  return austen_chapters(run_program({"Rscript", "--vanilla", "-e", kAustenScript},
                                     "install the Debian package r-cran-janeaustenr: apt-get install -y "
                                     "r-cran-janeaustenr"));
}

std::vector<MixDoc> read_fortunes(const std::string& root, const std::vector<std::string>&) {
  const std::string dir = root + "/usr/share/games/fortunes";
  std::vector<MixDoc> docs;
  for (auto& name : fortune_files(dir)) {
    std::vector<std::string> fs = split_fortunes(read_text_file(dir + "/" + name));
    for (size_t i = 0; i < fs.size(); ++i) docs.push_back({name + "#" + std::to_string(i), std::move(fs[i])});
  }
  return docs;
}

std::vector<MixDoc> read_python_doc(const std::string& root, const std::vector<std::string>& files) {
  std::string dir = versioned_dir(files, "/usr/share/doc/python3.");
  return read_files(root, select(files, dir + "html/_sources/", {".rst.txt", ".txt.gz"}), clean_rest, nullptr);
}

std::vector<MixDoc> read_linux_doc(const std::string& root, const std::vector<std::string>& files) {
  std::string dir = versioned_dir(files, "/usr/share/doc/linux-doc-");
  return read_files(root, select(files, dir + "Documentation/", {".rst", ".rst.gz", ".txt", ".txt.gz"}, ".gz"),
                    clean_rest, "linux-doc");
}

std::vector<MixDoc> read_gcide(const std::string& root, const std::vector<std::string>&) {
  return dictd_entries(read_source(root, "/usr/share/dictd/gcide.index"),
                       read_source(root, "/usr/share/dictd/gcide.dict.dz"));
}

std::vector<MixDoc> read_wordnet(const std::string& root, const std::vector<std::string>&) {
  std::vector<MixDoc> docs;
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    const std::string text = read_source(root, std::string("/usr/share/wordnet/data.") + pos);
    for (size_t i = 0; i < text.size();) {
      size_t nl = std::min(text.find('\n', i), text.size());
      std::string_view line(text.data() + i, nl - i);
      i = nl + 1;
      std::string g = wordnet_gloss(line);
      if (!g.empty()) docs.push_back({fmt::format("{}:{}", pos, line.substr(0, line.find(' '))), g});
    }
  }
  return docs;
}

std::vector<MixDoc> read_man(const std::string& root, const std::vector<std::string>& files) {
  std::vector<std::pair<std::string, std::string>> sel;
  for (auto& [path, key] : select(files, "/usr/share/man/man", {".gz"}, ".gz"))
    if (std::isdigit((unsigned char)key[0])) sel.emplace_back(path, "man" + key);  // not /usr/share/man/<lang>/
  return read_files(root, sel, strip_troff, "man");
}

std::vector<MixDoc> read_c(const std::string& root, const std::vector<std::string>& files) {
  std::vector<MixDoc> docs = read_files(root, select(files, "/usr/include/", {".h"}), nullptr, nullptr);
  for (auto& d : docs) d.text = "/* " + d.key + " */\n" + d.text;
  return docs;
}

std::vector<MixDoc> read_python(const std::string& root, const std::vector<std::string>& files) {
  std::string dir = versioned_dir(files, "/usr/lib/python3.");
  std::vector<std::pair<std::string, std::string>> sel;
  for (auto& s : select(files, dir, {".py"}))
    if (s.second.find("site-packages/") == std::string::npos) sel.push_back(s);
  std::vector<MixDoc> docs = read_files(root, sel, nullptr, nullptr);
  for (auto& d : docs) d.text = "# " + d.key + "\n" + d.text;
  return docs;
}

// "libpython3.*-minimal" matches "libpython3.11-minimal" ('*': digits and dots).
bool matches(std::string_view pattern, std::string_view name, std::string* middle) {
  size_t star = pattern.find('*');
  if (star == std::string_view::npos) return pattern == name;
  std::string_view pre = pattern.substr(0, star), suf = pattern.substr(star + 1);
  if (name.size() < pre.size() + suf.size() + 1 || !name.starts_with(pre) || !name.ends_with(suf)) return false;
  std::string_view mid = name.substr(pre.size(), name.size() - pre.size() - suf.size());
  if (!std::all_of(mid.begin(), mid.end(), [](char c) { return std::isdigit((unsigned char)c) || c == '.'; }))
    return false;
  *middle = mid;
  return true;
}

// "3.9" < "3.11": compare dot-separated numbers.
bool version_less(const std::string& a, const std::string& b) {
  auto parts = [](const std::string& s) {
    std::vector<long> v;
    for (size_t i = 0; i < s.size();) {
      size_t e = std::min(s.find('.', i), s.size());
      v.push_back(e > i ? std::stol(s.substr(i, e - i)) : 0);
      i = e + 1;
    }
    return v;
  };
  return parts(a) < parts(b);
}

}  // namespace

std::vector<MixDoc> austen_chapters(std::string_view out) {
  std::vector<MixDoc> docs;
  std::string book;
  int chapter = 0;
  for (size_t i = 0; i < out.size();) {
    size_t nl = std::min(out.find('\n', i), out.size());
    std::string_view line = out.substr(i, nl - i);
    i = nl + 1;
    if (line.starts_with('\001')) {
      book = line.substr(1);
      chapter = 0;
      docs.push_back({book + "/0", ""});
      continue;
    }
    WATTMOE_REQUIRE(!book.empty(), "janeaustenr output: text before the first book marker");
    if (line.starts_with("CHAPTER ") || line.starts_with("Chapter "))
      docs.push_back({book + "/" + std::to_string(++chapter), ""});
    docs.back().text.append(line);
    docs.back().text += '\n';
  }
  return docs;
}

std::vector<std::string> package_files(const std::string& root, const MixDomain& d,
                                       std::vector<std::string>* resolved) {
  const std::string info = root + "/var/lib/dpkg/info";
  std::vector<std::string> names;  // dpkg list file names, without ".list"
  std::error_code ec;
  if (fs::is_directory(info, ec))
    for (auto& e : fs::directory_iterator(info, ec))
      if (std::string n = e.path().filename().string(); n.ends_with(".list")) names.push_back(n.substr(0, n.size() - 5));
  std::sort(names.begin(), names.end());
  std::vector<std::string> files;
  for (size_t k = 0; k < d.list_names.size(); ++k) {
    std::string best, best_mid, mid;
    for (auto& n : names) {
      std::string pkg = n.substr(0, n.find(':'));  // "libc6-dev:amd64" -> "libc6-dev"
      if (matches(d.list_names[k], pkg, &mid) && (best.empty() || version_less(best_mid, mid))) best = n, best_mid = mid;
    }
    const std::string& apt = d.packages[std::min(k, d.packages.size() - 1)];
    WATTMOE_REQUIRE(!best.empty(), "domain {}: the Debian package {} is not installed (no {}/{}.list); install it: "
                    "apt-get install -y {}", d.name, apt, info, d.list_names[k], apt);
    if (resolved) resolved->push_back(best.substr(0, best.find(':')));
    const std::string list = read_text_file(info + "/" + best + ".list");
    for (size_t i = 0; i < list.size();) {
      size_t nl = std::min(list.find('\n', i), list.size());
      if (nl > i) files.emplace_back(list.substr(i, nl - i));
      i = nl + 1;
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  // dpkg lists name directories and symlinks too; keep the regular files that are present.
  std::erase_if(files, [&](const std::string& f) {
    std::error_code e2;
    return fs::is_symlink(root + f, e2) || !fs::is_regular_file(root + f, e2);
  });
  return files;
}

const std::vector<MixDomain>& mix_domains() {
  static const std::vector<MixDomain> domains = {
      {"kjv", "archaic", {"bible-kjv"}, {"bible-kjv"}, "bible -f \"Gen1:1-Rev22:21\", references removed", true,
       read_kjv},
      {"fortunes", "prose", {"fortunes"}, {"fortunes"}, "/usr/share/games/fortunes (English files)", true,
       read_fortunes},
      {"austen", "prose", {"r-cran-janeaustenr"}, {"r-cran-janeaustenr"}, "the six novels of janeaustenr "
       "(Rscript), one document a chapter", true, read_austen},
      {"python-doc", "prose", {"python3-doc"}, {"python3.*-doc"},
       "/usr/share/doc/python3.N/html/_sources/**/*.rst.txt, reST markup removed", true, read_python_doc},
      {"linux-doc", "prose", {"linux-doc"}, {"linux-doc-*"},
       "/usr/share/doc/linux-doc-N/Documentation/**/*.{rst,txt}[.gz], reST markup removed", true, read_linux_doc},
      {"gcide", "reference", {"dict-gcide"}, {"dict-gcide"}, "/usr/share/dictd/gcide.{index,dict.dz}, one entry a "
       "document", true, read_gcide},
      {"wordnet", "reference", {"wordnet-base"}, {"wordnet-base"}, "/usr/share/wordnet/data.{noun,verb,adj,adv}: "
       "\"words: gloss\" per synset", false, read_wordnet},
      {"man", "reference", {"manpages", "manpages-dev"}, {"manpages", "manpages-dev"},
       "/usr/share/man/man*/*.gz of the packages, troff stripped (.so links skipped)", true, read_man},
      {"c", "code", {"libc6-dev", "linux-libc-dev"}, {"libc6-dev", "linux-libc-dev"},
       "/usr/include/**/*.h of the packages, each after a /* path */ line", true, read_c},
      {"python", "code", {"python3-minimal", "python3"}, {"libpython3.*-minimal", "libpython3.*-stdlib"},
       "/usr/lib/python3.N/**/*.py of the packages, each after a # path line", true, read_python},
  };
  return domains;
}

}  // namespace wattmoe
