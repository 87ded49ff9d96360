// wattmoe data: builds the text corpora. Default (--corpus kjv): KJV, fortunes, C headers and seeded domain-shift
// corruptions of KJV; prints "wrote 12 files (9.87 MB) to data (manifest.json)" or, with --json, the files (schema
// wattmoe.data/1). --corpus mix: the multi-domain corpus of text/mix_corpus.h under OUT/mix; prints one line per
// domain (kind, documents, MB per split) and a total, or with --json the domains (schema wattmoe.data.mix/1).
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output_flags.h"
#include "core/error.h"
#include "text/corpus.h"
#include "text/mix_corpus.h"

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

void run_mix(const MixOptions& m, const OutputFlags& o) {
  const std::vector<MixDomainResult> rs = build_mix(m);
  Json list = Json::array();
  uint64_t total = 0;
  std::string human = fmt::format("wrote {} domains to {}/mix (manifest.json lists them)\n", rs.size(), m.out);
  human += fmt::format("  {:<11} {:<9} {:>9} {:>10} {:>8} {:>8}\n", "domain", "kind", "documents", "train MB", "val MB",
                       "test MB");
  for (const MixDomainResult& r : rs) {
    list.push_back(Json{{"name", r.name}, {"kind", r.kind}, {"documents", r.documents}, {"bytes", r.bytes},
                        {"skipped_non_utf8", r.skipped}, {"train_bytes", r.split_bytes[0]},
                        {"val_bytes", r.split_bytes[1]}, {"test_bytes", r.split_bytes[2]}});
    human += fmt::format("  {:<11} {:<9} {:>9} {:>10.2f} {:>8.2f} {:>8.2f}\n", r.name, r.kind, r.documents,
                         r.split_bytes[0] / 1e6, r.split_bytes[1] / 1e6, r.split_bytes[2] / 1e6);
    total += r.bytes;
  }
  human += fmt::format("  total {:.2f} MB\n", total / 1e6);
  const Json j{{"schema", "wattmoe.data.mix/1"}, {"out", m.out + "/mix"}, {"bytes", total}, {"domains", list}};
  emit_result(o, j, human);
}

}  // namespace

void add_data_command(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "Text corpora for training and domain-shift evaluation");
  data->require_subcommand(1);
  auto out = std::make_shared<std::string>("data");
  auto corpus = std::make_shared<std::string>("kjv");
  auto seed = std::make_shared<uint64_t>(0);
  auto mix = std::make_shared<MixOptions>();
  auto cap_mb = std::make_shared<double>(double(mix->cap_bytes) / (1 << 20));
  auto o = std::make_shared<OutputFlags>();
  CLI::App* build = data->add_subcommand(
      "build", "Write kjv.{train,val,test}.txt, fortunes.txt, c_headers.txt, corrupted kjv val/test and manifest.json "
               "(--corpus mix: OUT/mix/DOMAIN/{train,val,test}.txt from Debian packages, see docs/ARCHITECTURE.md)");
  build->add_option("--out", *out, "output directory")->capture_default_str();
  build->add_option("--corpus", *corpus, "kjv: KJV, fortunes, C headers and KJV corruptions; mix: the multi-domain "
                    "corpus (prose, code, reference, archaic) from installed Debian packages")
      ->check(CLI::IsMember({"kjv", "mix"}))
      ->capture_default_str();
  CLI::Option* seed_opt =
      build->add_option("--seed", *seed, "seed of the corruptions (noise, shuffle); --corpus kjv only")
          ->capture_default_str();
  build->add_option("--domains", mix->domains, "--corpus mix: domains to build (default: all of kjv, fortunes, austen, "
                    "python-doc, linux-doc, gcide, wordnet, man, c, python)")
      ->delimiter(',');
  build->add_option("--train", mix->train, "--corpus mix: domains or kinds concatenated into LABEL.{train,val,test}"
                    ".txt (LABEL: the list joined by '+')")
      ->delimiter(',')
      ->capture_default_str();
  build->add_option("--cap-mb", *cap_mb, "--corpus mix: at most this many MiB of documents per domain (a hash-chosen "
                    "sample when the source is larger)")
      ->capture_default_str();
  build->add_option("--root", mix->root, "--corpus mix: read packages under this directory (dpkg lists in "
                    "ROOT/var/lib/dpkg/info) instead of /; for tests")
      ->capture_default_str();
  add_output_flags(build, *o);
  build->callback([=] {
    if (*corpus == "mix") {
      mix->out = *out;
      WATTMOE_REQUIRE(*cap_mb > 0 && *cap_mb <= 1e9, "--cap-mb: expected a size > 0 and <= 1e9 MiB, got {}", *cap_mb);
      WATTMOE_REQUIRE(seed_opt->count() == 0, "--seed applies to --corpus kjv only (the mix splits need no seed)");
      mix->cap_bytes = uint64_t(*cap_mb * double(1 << 20));
      run_mix(*mix, *o);
    } else {
      WATTMOE_REQUIRE(mix->domains.empty() && mix->root == "/" && mix->train == std::vector<std::string>{"prose"},
                      "--domains, --train and --root apply to --corpus mix only");
      run_build(*out, *seed, *o);
    }
  });
  add_data_tokenizer_command(data);  // cli/cmd_data_tokenizer.cpp
}

}  // namespace wattmoe::cli
