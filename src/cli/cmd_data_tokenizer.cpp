// wattmoe data tokenizer: trains a byte-level BPE tokenizer on text files and writes it as a Hugging Face
// tokenizer.json (text/bpe_train.h). Prints "wrote data/tokenizer.json: vocab 8192 (256 bytes, 1 special, 7935
// merges) from 102.4 MB in 95.3 s" or, with --json, the same facts (schema wattmoe.data.tokenizer/1).
#include <memory>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output_flags.h"
#include "text/bpe_train.h"
#include "text/tokenizer.h"

namespace wattmoe::cli {

namespace {

struct TokenizerArgs {
  std::vector<std::string> train;
  std::string out;
  BpeTrainOptions opt;
  OutputFlags o;
};

void run_tokenizer(const TokenizerArgs& a) {
  const BpeTrainResult r = train_bpe_files(a.train, a.opt);
  write_bpe_tokenizer(a.out, r);
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(a.out);  // what every command will load: check it does
  Json specials = Json::object();
  for (int i = 0; i < r.num_special; ++i) specials[r.vocab[256 + i]] = 256 + i;
  const Json j{{"schema", "wattmoe.data.tokenizer/1"}, {"out", a.out}, {"train", a.train},
               {"vocab_size", tok->vocab_size()}, {"requested_vocab_size", a.opt.vocab_size},
               {"merges", r.merges.size()}, {"special_tokens", specials}, {"min_frequency", a.opt.min_frequency},
               {"train_bytes", r.bytes}, {"words", r.words}, {"distinct_words", r.unique_words},
               {"count_seconds", r.count_seconds}, {"merge_seconds", r.merge_seconds}};
  std::string human = fmt::format("wrote {}: vocab {} (256 bytes, {} special, {} merges) from {:.2f} MB in {:.1f} s\n",
                                  a.out, tok->vocab_size(), r.num_special, r.merges.size(), double(r.bytes) / 1e6,
                                  r.count_seconds + r.merge_seconds);
  if (tok->vocab_size() < a.opt.vocab_size)
    human += fmt::format("  (fewer than --vocab {}: no pair occurs --min-frequency {} times any more)\n",
                         a.opt.vocab_size, a.opt.min_frequency);
  emit_result(a.o, j, human);
}

}  // namespace

void add_data_tokenizer_command(CLI::App* data) {
  auto a = std::make_shared<TokenizerArgs>();
  CLI::App* cmd = data->add_subcommand(
      "tokenizer", "Train a byte-level BPE tokenizer on text files and write a Hugging Face tokenizer.json");
  cmd->add_option("--train", a->train, "training text files (UTF-8), e.g. data/kjv.train.txt")->required();
  cmd->add_option("--out", a->out, "the tokenizer.json to write (atomically)")->required();
  cmd->add_option("--vocab", a->opt.vocab_size, "vocabulary size: 256 bytes + special tokens + merges")
      ->capture_default_str();
  cmd->add_option("--min-frequency", a->opt.min_frequency, "stop merging when the best pair occurs fewer times")
      ->capture_default_str();
  cmd->add_option("--special", a->opt.special_tokens, "special tokens, ids 256, 257, ... in this order")
      ->capture_default_str();
  add_output_flags(cmd, a->o);
  cmd->callback([a] { run_tokenizer(*a); });
}

}  // namespace wattmoe::cli
