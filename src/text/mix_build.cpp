// build_mix (text/mix_corpus.h): read each domain, clean, cap, split, write OUT/mix atomically with manifest.json.
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/timer.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "text/corpus.h"
#include "text/mix_corpus.h"
#include "text/sha256.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSplitNames[3] = {"train", "val", "test"};

uint64_t hash_u64(std::string_view domain, std::string_view key, int word) {
  Sha256 h;
  h.update("wattmoe.mix/");
  h.update(domain);
  h.update("/");
  h.update(key);
  std::array<uint8_t, 32> d = h.digest();
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | d[size_t(word * 8 + i)];
  return v;
}

std::string package_version(const std::string& root, const std::string& pkg) {
  if (!file_exists(root + "/var/lib/dpkg/status")) return "unknown";  // a --root tree without dpkg's database
  try {
    std::vector<std::string> argv = {"dpkg-query"};
    if (!root.empty()) argv.push_back("--admindir=" + root + "/var/lib/dpkg");
    for (const char* a : {"-W", "-f=${Version}"}) argv.emplace_back(a);
    argv.push_back(pkg);
    std::string v = run_program(argv, "dpkg-query comes with dpkg");
    return v.empty() ? "unknown" : v;
  } catch (const Error&) {
    return "unknown";
  }
}

// The first "License:" short name of a machine-readable (DEP-5, "Format: ..." first line) copyright file -- the
// "Files: *" paragraph's, by convention -- else "see /usr/share/doc/PKG/copyright" (free-form files name licences
// in prose, which we do not guess at).
std::string package_licence(const std::string& root, const std::string& pkg) {
  const std::string path = "/usr/share/doc/" + pkg + "/copyright";
  if (!file_exists(root + path)) return "unknown (no " + path + ")";
  const std::string text = read_text_file(root + path);
  if (!text.starts_with("Format:")) return "see " + path;
  for (size_t i = 0; i < text.size();) {
    size_t nl = std::min(text.find('\n', i), text.size());
    std::string_view line(text.data() + i, nl - i);
    i = nl + 1;
    if (line.starts_with("License:")) {
      line.remove_prefix(8);
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      while (!line.empty() && std::isspace((unsigned char)line.back())) line.remove_suffix(1);
      if (!line.empty()) return std::string(line);
    }
  }
  return "see " + path;
}

// Removes the directory unless released: an error leaves no partial corpus.
struct TempDir {
  std::string path;
  bool keep = false;
  ~TempDir() {
    std::error_code ec;
    if (!keep) fs::remove_all(path, ec);
  }
};

void write_file(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

Json file_entry(const std::string& rel, const std::string& text) {
  return Json{{"path", rel}, {"bytes", text.size()}, {"lines", count_lines(text)}, {"sha256", sha256_hex(text)}};
}

}  // namespace

MixSplit mix_split(std::string_view domain, std::string_view key) {
  uint64_t b = hash_u64(domain, key, 0) % 100;
  return b < 90 ? MixSplit::train : b < 95 ? MixSplit::val : MixSplit::test;
}

uint64_t mix_cap_rank(std::string_view domain, std::string_view key) { return hash_u64(domain, key, 1); }

std::vector<size_t> mix_cap(std::string_view domain, const std::vector<MixDoc>& docs, uint64_t cap_bytes) {
  std::vector<std::pair<uint64_t, size_t>> order;
  uint64_t total = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    order.emplace_back(mix_cap_rank(domain, docs[i].key), i);
    total += docs[i].text.size();
  }
  std::vector<size_t> kept;
  if (total <= cap_bytes) {
    for (size_t i = 0; i < docs.size(); ++i) kept.push_back(i);
    return kept;
  }
  std::sort(order.begin(), order.end());
  uint64_t used = 0;
  for (auto& [rank, i] : order) {
    if (used + docs[i].text.size() > cap_bytes) continue;
    used += docs[i].text.size();
    kept.push_back(i);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

std::vector<MixDomainResult> build_mix(const MixOptions& o) {
  const double t0 = now_seconds();
  const std::string root = o.root == "/" ? "" : (o.root.ends_with('/') ? o.root.substr(0, o.root.size() - 1) : o.root);
  WATTMOE_REQUIRE(root.empty() || fs::is_directory(root), "--root {}: not a directory", o.root);
  WATTMOE_REQUIRE(o.cap_bytes > 0, "--cap-mb: expected a size > 0");

  // The domains asked for, in table order, and the training set.
  std::vector<const MixDomain*> chosen;
  for (const std::string& n : o.domains) {
    auto it = std::find_if(mix_domains().begin(), mix_domains().end(), [&](auto& d) { return d.name == n; });
    if (it == mix_domains().end()) {
      std::string known;
      for (auto& d : mix_domains()) known += (known.empty() ? "" : ", ") + d.name;
      fail("--domains: unknown domain '{}' (known: {})", n, known);
    }
  }
  for (auto& d : mix_domains())
    if (o.domains.empty() || std::find(o.domains.begin(), o.domains.end(), d.name) != o.domains.end())
      chosen.push_back(&d);
  std::vector<bool> in_train(chosen.size(), false);
  std::string label;
  for (const std::string& t : o.train) {
    bool any = false;
    for (size_t k = 0; k < chosen.size(); ++k)
      if (chosen[k]->name == t || chosen[k]->kind == t) in_train[k] = any = true;
    WATTMOE_REQUIRE(any, "--train: '{}' names no domain or kind among the domains built", t);
    label += (label.empty() ? "" : "+") + t;
  }

  std::error_code ec;
  fs::create_directories(o.out, ec);
  WATTMOE_REQUIRE(!ec && fs::is_directory(o.out), "{}: cannot create the output directory ({})", o.out,
                  ec.message());
  const fs::path final_dir = fs::path(o.out) / "mix";
  TempDir tmp{(fs::path(o.out) / fmt::format("mix.tmp.{}", ::getpid())).string()};
  fs::remove_all(tmp.path, ec);
  fs::create_directories(tmp.path, ec);
  WATTMOE_REQUIRE(!ec, "{}: cannot create ({})", tmp.path, ec.message());

  std::vector<MixDomainResult> results;
  std::string concat[3];
  Json manifest_domains = Json::array();
  for (size_t k = 0; k < chosen.size(); ++k) {
    const MixDomain& d = *chosen[k];
    fmt::print(stderr, "data: mix [{}/{}] {} ({}) ...\n", k + 1, chosen.size(), d.name, d.kind);
    std::vector<std::string> resolved;
    const std::vector<std::string> files = package_files(root, d, &resolved);
    std::vector<MixDoc> docs = d.read(root, files);
    MixDomainResult r{d.name, d.kind};
    Json skipped = Json::array();
    std::vector<MixDoc> clean;
    for (MixDoc& doc : docs) {
      if (!utf8::valid(doc.text)) {
        ++r.skipped;
        if (skipped.size() < 20) skipped.push_back(doc.key);
        if (r.skipped <= 3) fmt::print(stderr, "data: mix {}: skipping {} (not valid UTF-8)\n", d.name, doc.key);
        continue;
      }
      std::string t = finish_doc(doc.text);
      if (!t.empty()) clean.push_back({std::move(doc.key), std::move(t)});
    }
    docs.clear();
    WATTMOE_REQUIRE(!clean.empty(), "domain {}: no documents with text in {} (packages: {})", d.name, d.source,
                    fmt::join(d.packages, ", "));
    std::vector<size_t> kept = mix_cap(d.name, clean, o.cap_bytes);
    r.documents = kept.size();
    std::string split_text[3];
    for (size_t i : kept) {
      std::string& s = split_text[int(mix_split(d.name, clean[i].key))];
      if (d.blank_between && !s.empty()) s += '\n';
      s += clean[i].text;
    }
    Json dfiles;
    fs::create_directories(fs::path(tmp.path) / d.name, ec);
    WATTMOE_REQUIRE(!ec, "{}/{}: cannot create ({})", tmp.path, d.name, ec.message());
    for (int s = 0; s < 3; ++s) {
      WATTMOE_REQUIRE(!split_text[s].empty(), "domain {}: the {} split is empty ({} documents; the 90/5/5 hash split "
                      "needs more)", d.name, kSplitNames[s], kept.size());
      const std::string rel = d.name + "/" + kSplitNames[s] + ".txt";
      write_file((fs::path(tmp.path) / rel).string(), split_text[s]);
      dfiles[kSplitNames[s]] = file_entry(rel, split_text[s]);
      r.split_bytes[s] = split_text[s].size();
      r.bytes += split_text[s].size();
      if (in_train[k]) concat[s] += split_text[s];
    }
    Json pkgs = Json::array();
    for (auto& p : resolved)
      pkgs.push_back({{"name", p}, {"version", package_version(root, p)}, {"licence", package_licence(root, p)}});
    manifest_domains.push_back({{"name", d.name}, {"kind", d.kind}, {"train", bool(in_train[k])},
                                {"packages", pkgs}, {"install", fmt::format("apt-get install -y {}",
                                                                            fmt::join(d.packages, " "))},
                                {"source", d.source}, {"documents", kept.size()},
                                {"documents_over_cap", clean.size() - kept.size()},
                                {"skipped_non_utf8", r.skipped}, {"skipped_examples", skipped}, {"bytes", r.bytes},
                                {"files", dfiles}});
    fmt::print(stderr, "data: mix [{}/{}] {}: {} documents, {:.2f} MB ({} over the cap, {} not UTF-8)  ({:.1f} s)\n",
               k + 1, chosen.size(), d.name, kept.size(), double(r.bytes) / 1e6, clean.size() - kept.size(),
               r.skipped, now_seconds() - t0);
    results.push_back(r);
  }

  Json train_files;
  for (int s = 0; s < 3; ++s) {
    const std::string rel = label + "." + kSplitNames[s] + ".txt";
    write_file((fs::path(tmp.path) / rel).string(), concat[s]);
    train_files[kSplitNames[s]] = file_entry(rel, concat[s]);
  }
  Json train_domains = Json::array();
  for (size_t k = 0; k < chosen.size(); ++k)
    if (in_train[k]) train_domains.push_back(chosen[k]->name);
  Json m{{"schema", "wattmoe.mix/1"},
         {"cap_bytes", o.cap_bytes},
         {"split", "per document: sha256(\"wattmoe.mix/DOMAIN/KEY\") first 8 bytes (big-endian) mod 100: < 90 train, "
                   "< 95 val, else test"},
         {"cap", "documents by sha256 bytes 8..15 ascending, each kept if it still fits under cap_bytes"},
         {"train", {{"label", label}, {"domains", train_domains}, {"files", train_files}}},
         {"domains", manifest_domains}};
  write_json_file((fs::path(tmp.path) / "manifest.json").string(), m);

  // Swap into place: the old corpus is moved aside first and removed only after the new one is in place.
  const std::string old = (fs::path(o.out) / fmt::format("mix.old.{}", ::getpid())).string();
  bool had_old = fs::exists(final_dir, ec);
  if (had_old) {
    fs::rename(final_dir, old, ec);
    WATTMOE_REQUIRE(!ec, "{}: cannot move the previous corpus aside ({})", final_dir.string(), ec.message());
  }
  fs::rename(tmp.path, final_dir, ec);
  if (ec) {
    std::error_code ec2;
    if (had_old) fs::rename(old, final_dir, ec2);
    fail("{}: cannot rename {} into place ({})", final_dir.string(), tmp.path, ec.message());
  }
  tmp.keep = true;
  if (had_old) fs::remove_all(old, ec);
  fmt::print(stderr, "data: mix: wrote {} domains to {} ({:.1f} s)\n", results.size(), final_dir.string(),
             now_seconds() - t0);
  return results;
}

}  // namespace wattmoe
