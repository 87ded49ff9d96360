// The multi-domain corpus of `wattmoe data build --corpus mix`: text from installed Debian packages only, so any
// machine with the same package versions gets the same bytes. Domains (name, kind, packages):
//   kjv         archaic    bible-kjv              `bible` output, one verse per line; documents: chapters
//   fortunes    prose      fortunes               English fortune files; documents: fortunes (category/index)
//   austen      prose      r-cran-janeaustenr     the six novels, read through Rscript; documents: chapters
//   python-doc  prose      python3-doc            reST sources of the Python documentation; documents: files
//   linux-doc   prose      linux-doc              Documentation/ .rst and .txt of the kernel; documents: files
//   gcide       reference  dict-gcide             dictionary entries (via gcide.index); documents: entries
//   wordnet     reference  wordnet-base           "word, word: gloss" per synset; documents: synsets
//   man         reference  manpages, manpages-dev man pages with troff stripped; documents: pages
//   c           code       libc6-dev, linux-libc-dev  C headers under /usr/include; documents: files
//   python      code       libpython3.X-minimal/-stdlib  the standard library's .py files; documents: files
// janeaustenr ships R lazy-load data (.rdb/.rdx: compressed R serialization); rather than parse that we let R read
// it (Rscript comes with the package, as `bible` with bible-kjv), which is exact and version-proof.
//
// Files of a package come from its dpkg file list (ROOT/var/lib/dpkg/info/PKG[:ARCH].list), not from a directory
// walk, so pages or headers of unrelated packages on one machine do not leak in. A missing list is the error
// "domain D: the Debian package P is not installed (...): apt-get install -y P".
//
// Splits are per document and hash-based: bucket = first 8 bytes of sha256("wattmoe.mix/DOMAIN/KEY") mod 100,
// < 90 train, < 95 val, else test. A document keeps its split when other documents are added or removed (a
// seeded shuffle would reshuffle everything), and no seed is needed. The per-domain cap keeps the documents with
// the smallest second hash (bytes 8..15) that fit, skipping any that would exceed it: a sample spread over the whole
// source, stable under additions, rather than the alphabetically first files.
//
// Cleaning: every document is valid UTF-8 (a document that is not -- a Latin-1 man page, a gcide entry -- is
// skipped, counted in the manifest and named on stderr; an unreadable file is an Error naming it), CR LF -> LF,
// trailing spaces trimmed, ends in exactly one '\n'. Man pages are rendered by strip_troff (below, no groff: same
// bytes on every machine), reST by clean_rest, .gz/.dz files are decompressed by `gzip -dc` (gzip is an essential
// Debian package; the project does not link zlib for this one use).
//
// Output (all under OUT/mix, written to OUT/mix.tmp.PID and renamed into place, so an error leaves no partial
// corpus and an earlier OUT/mix untouched until the new one is complete):
//   OUT/mix/DOMAIN/{train,val,test}.txt   documents of the split in source order, separated by a blank line
//   OUT/mix/LABEL.{train,val,test}.txt    the splits of the training domains concatenated (LABEL: the --train
//                                         list with ',' -> '+', "prose" by default: every prose domain)
//   OUT/mix/manifest.json                 per domain: kind, packages (version, licence), source, documents,
//                                         skipped, and per file bytes, lines, sha256
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wattmoe {

struct MixDoc {
  std::string key;   // stable name: a relative path, "Ge1", "noun:00001740", "fortunes/art#12"
  std::string text;  // raw, possibly not UTF-8: finish_doc cleans it
};

enum class MixSplit { train, val, test };
MixSplit mix_split(std::string_view domain, std::string_view key);
uint64_t mix_cap_rank(std::string_view domain, std::string_view key);  // smaller: kept first under a cap

// Indices of the documents kept under cap_bytes (by text size), in increasing index order.
std::vector<size_t> mix_cap(std::string_view domain, const std::vector<MixDoc>& docs, uint64_t cap_bytes);

// Valid UTF-8 text -> CR LF and lone CR -> LF, trailing whitespace of each line removed, leading and trailing blank
// lines removed, and a final '\n' (empty for whitespace-only input).
std::string finish_doc(std::string_view text);

// troff (man(7) macros) -> plain text: text lines and font macros (.B, .I, .BR, ... -> their arguments joined) are
// filled into one line per paragraph as troff would (not in .nf/.EX/tables); headings (.SH/.SS) and paragraph
// breaks (.PP/.P/.LP/.TP/.IP/.sp) start a new paragraph after a blank line, .TP's tag and .IP's tag get a line of
// their own; other requests are dropped; escapes \f? \f(xx \f[..] dropped, \- \e \& \(xx \[xx] \*(xx mapped or dropped, \" comments removed.
std::string strip_troff(std::string_view man);
// reST -> plain text: section underlines/overlines dropped, directive and comment lines (".. x::") and their
// ":option:" lines dropped (toctree and index: their whole body), "\ " removed, roles (:func:`x` -> x, :ref:`text <target>` -> text) and ``literals`` unwrapped.
std::string clean_rest(std::string_view rest);
// One WordNet data.* line -> "word, other word: gloss" (underscores -> spaces); "" for the licence header lines.
std::string wordnet_gloss(std::string_view data_line);
// dictd index (headword TAB base64-offset TAB base64-length lines) + the decompressed .dict -> one document per
// distinct entry, in offset order, keyed by headword ("#N" added for the N-th repeat); "00-" database info skipped.
std::vector<MixDoc> dictd_entries(std::string_view index, std::string_view dict);
// Lines "\001BOOK" then the book's lines (what mix_sources.cpp's Rscript prints) -> documents "BOOK/0" (title page)
// and "BOOK/N" for each line starting "CHAPTER " or "Chapter ".
std::vector<MixDoc> austen_chapters(std::string_view rscript_output);

struct MixDomain {
  std::string name, kind;
  std::vector<std::string> packages;  // as given to apt-get; list_names: their dpkg list patterns ('*': digits)
  std::vector<std::string> list_names;
  std::string source;                 // what is read, for the manifest
  bool blank_between = true;          // false: one line per document (wordnet), no blank line between
  std::function<std::vector<MixDoc>(const std::string& root, const std::vector<std::string>& files)> read;
};
const std::vector<MixDomain>& mix_domains();

// Files of the installed packages matching the patterns ("libpython3.*-minimal": the highest 3.N installed wins),
// as absolute paths (read them at root + path), sorted, regular files only; resolved receives the dpkg package names
// matched ("libpython3.11-minimal"). Error naming the package and the apt-get command when one is not installed.
std::vector<std::string> package_files(const std::string& root, const MixDomain& d,
                                       std::vector<std::string>* resolved = nullptr);

struct MixOptions {
  std::string out = "data", root = "/";
  std::vector<std::string> domains;            // empty: all
  std::vector<std::string> train = {"prose"};  // domain names or kinds
  uint64_t cap_bytes = uint64_t(24) << 20;     // per domain, before splitting
};
struct MixDomainResult {
  std::string name, kind;
  uint64_t documents = 0, skipped = 0, bytes = 0;
  uint64_t split_bytes[3] = {0, 0, 0};
};
// Builds OUT/mix; progress on stderr. Errors (missing package, empty domain or split, unknown domain) leave nothing.
std::vector<MixDomainResult> build_mix(const MixOptions& o);

}  // namespace wattmoe
