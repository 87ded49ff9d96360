// Text corpora built from Debian packages, so every machine with the same packages gets the same bytes:
//   kjv       the King James Bible (`bible` from bible-kjv), one verse per line, split 90/5/5 by line
//   fortunes  the English cookie files of `fortunes`
//   c         C headers under /usr/include
// plus seeded domain-shift corruptions of kjv val/test (text/corrupt.h). `wattmoe data build` writes them all and
// a manifest.json with sizes and SHA-256 digests.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace wattmoe {

// `bible -f` output -> one verse per line, reference removed. See corpus_sources.cpp for how lines are read.
// refs, when given, receives each verse's reference ("Ge1:1").
std::vector<std::string> kjv_verses(std::string_view bible_output, std::vector<std::string>* refs = nullptr);
// Runs `bible -f "Gen1:1-Rev22:21"`; Error with an install hint if the program is missing or fails.
std::string run_bible();

struct LineSplit {
  std::vector<std::string> train, val, test;
};
// First floor(90%) of the lines, the next floor(5%), the rest.
LineSplit split_90_5_5(const std::vector<std::string>& lines);

// Runs argv (searched on PATH) and returns its stdout; Error "cannot run `prog` ...: HINT" or "`prog` failed (exit
// status N): HINT".
std::string run_program(const std::vector<std::string>& argv, const char* hint);

// The English fortune files of `dir` (what fortunes_corpus reads), sorted; Error if none.
std::vector<std::string> fortune_files(const std::string& dir);
// One fortune file's text -> its fortunes ('%' separators and overstrikes resolved, outer blank lines trimmed).
std::vector<std::string> split_fortunes(std::string_view text);

// Fortune files of `dir` in sorted name order (English only: data files, symlinks, subdirectories, pictures
// and the Latin file are skipped), '%' separators removed, backspace overstrikes resolved; one blank line between
// fortunes.
std::string fortunes_corpus(const std::string& dir = "/usr/share/games/fortunes");

// *.h files under `dir` (not c++/), shallow paths first and then by name, each preceded by a "/* path */" line;
// files over 128 KiB or not valid UTF-8 are skipped; stops before the first file that would take the total over
// `cap_bytes`.
std::string c_headers_corpus(const std::string& dir = "/usr/include", size_t cap_bytes = size_t(4) << 20);

std::string join_lines(const std::vector<std::string>& lines);  // each followed by '\n'
size_t count_lines(std::string_view text);                     // '\n's, plus one for an unterminated last line

struct CorpusFile {
  std::string name;
  uint64_t bytes = 0, lines = 0;
  std::string sha256;
};

// Writes every corpus file and manifest.json into out_dir (created if needed). Progress goes to stderr.
std::vector<CorpusFile> build_corpora(const std::string& out_dir, uint64_t seed);

}  // namespace wattmoe
