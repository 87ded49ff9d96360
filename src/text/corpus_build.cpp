// `wattmoe data build`: writes the corpora, their corruptions and manifest.json.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/timer.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "text/corpus.h"
#include "text/corrupt.h"
#include "text/sha256.h"

namespace wattmoe {

std::vector<CorpusFile> build_corpora(const std::string& out_dir, uint64_t seed) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  WATTMOE_REQUIRE(!ec && fs::is_directory(out_dir), "{}: cannot create the output directory ({})", out_dir,
                  ec.message());
  const double t0 = now_seconds();
  std::vector<CorpusFile> files;
  auto write = [&](const std::string& name, const std::string& text) {
    AtomicFile f((fs::path(out_dir) / name).string());
    f.write(text.data(), text.size());
    f.commit();
    files.push_back({name, text.size(), count_lines(text), sha256_hex(text)});
    fmt::print(stderr, "data: [{:2}/15] {:<26} {:>9} bytes {:>7} lines  ({:.1f} s)\n", files.size(), name,
               text.size(), files.back().lines, now_seconds() - t0);
  };

  std::vector<std::string> verses = kjv_verses(run_bible());
  WATTMOE_REQUIRE(verses.size() == 31102, "bible printed {} verses; the KJV has 31102 (is bible-kjv complete?)",
                  verses.size());
  LineSplit kjv = split_90_5_5(verses);
  write("kjv.train.txt", join_lines(kjv.train));
  const std::string val = join_lines(kjv.val), test = join_lines(kjv.test);
  write("kjv.val.txt", val);
  write("kjv.test.txt", test);
  write("fortunes.txt", fortunes_corpus());
  write("c_headers.txt", c_headers_corpus());

  for (auto [split, text] : {std::pair<const char*, const std::string*>{"val", &val}, {"test", &test}}) {
    for (int pct : {5, 10, 20}) {
      std::string name = fmt::format("kjv.{}.noise{:02}", split, pct);
      Rng rng(derive_seed(seed, name));
      write(name + ".txt", char_noise(*text, pct / 100.0, rng));
    }
    write(fmt::format("kjv.{}.caps.txt", split), all_caps(*text));
    std::string name = fmt::format("kjv.{}.shuffle", split);
    Rng rng(derive_seed(seed, name));
    write(name + ".txt", shuffle_words(*text, rng));
  }

  Json m;
  m["seed"] = seed;
  m["sources"] = {{"kjv", "bible -f \"Gen1:1-Rev22:21\" (bible-kjv), verse references removed, 90/5/5 line split"},
                  {"fortunes", "/usr/share/games/fortunes (fortunes), English cookie files"},
                  {"c_headers", "/usr/include/**/*.h except c++/, shallow first then by name, files <= 128 KiB, "
                                "capped at 4 MiB"},
                  {"corruptions", "text/corrupt.h: char_noise p=0.05/0.10/0.20, all_caps, shuffle_words; "
                                  "seed per file = derive_seed(seed, name without .txt)"}};
  Json list = Json::array();
  for (auto& f : files)
    list.push_back({{"name", f.name}, {"bytes", f.bytes}, {"lines", f.lines}, {"sha256", f.sha256}});
  m["files"] = list;
  write_json_file((fs::path(out_dir) / "manifest.json").string(), m);
  fmt::print(stderr, "data: wrote {} files and manifest.json to {} ({:.1f} s)\n", files.size(), out_dir,
             now_seconds() - t0);
  return files;
}

}  // namespace wattmoe
