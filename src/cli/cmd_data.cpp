// wattmoe data: builds the text corpora (KJV, fortunes, C headers) and their seeded domain-shift corruptions. Prints
// "wrote 12 files (9.87 MB) to data (manifest.json)" or, with --json, the files (schema wattmoe.data/1).
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output_flags.h"
#include "text/corpus.h"

namespace wattmoe::cli {

namespace {

void run_build(const std::string& out, uint64_t seed, const OutputFlags& o) {
  const std::vector<CorpusFile> files = build_corpora(out, seed);
  Json list = Json::array();
  uint64_t bytes = 0;
  for (const CorpusFile& f : files) {
    list.push_back(Json{{"name", f.name}, {"bytes", f.bytes}, {"lines", f.lines}, {"sha256", f.sha256}});
    bytes += f.bytes;
  }
  const Json j{{"schema", "wattmoe.data/1"}, {"out", out}, {"seed", seed}, {"files", list}};
  emit_result(o, j, fmt::format("wrote {} files ({:.2f} MB) to {} (manifest.json lists them)\n", files.size(),
                                double(bytes) / 1e6, out));
}

}  // namespace

void add_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Text corpora for training and domain-shift evaluation");
  data->require_subcommand(1);
  auto out = std::make_shared<std::string>("data");
  auto seed = std::make_shared<uint64_t>(0);
  auto o = std::make_shared<OutputFlags>();
  CLI::App* build = data->add_subcommand(
      "build", "Write kjv.{train,val,test}.txt, fortunes.txt, c_headers.txt, corrupted kjv val/test and manifest.json");
  build->add_option("--out", *out, "output directory")->capture_default_str();
  build->add_option("--seed", *seed, "seed of the corruptions (noise, shuffle)")->capture_default_str();
  add_output_flags(build, *o);
  build->callback([out, seed, o] { run_build(*out, *seed, *o); });
}

}  // namespace wattmoe::cli
