// wattmoe data: builds the text corpora (KJV, fortunes, C headers) and their seeded domain-shift corruptions.
#include <memory>

#include "cli/commands.h"
#include "text/corpus.h"

namespace wattmoe::cli {

void add_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Text corpora for training and domain-shift evaluation");
  data->require_subcommand(1);
  auto out = std::make_shared<std::string>("data");
  auto seed = std::make_shared<uint64_t>(0);
  CLI::App* build = data->add_subcommand(
      "build", "Write kjv.{train,val,test}.txt, fortunes.txt, c_headers.txt, corrupted kjv val/test and manifest.json");
  build->add_option("--out", *out, "output directory")->capture_default_str();
  build->add_option("--seed", *seed, "seed of the corruptions (noise, shuffle)")->capture_default_str();
  build->callback([out, seed] { build_corpora(*out, *seed); });
}

}  // namespace wattmoe::cli
