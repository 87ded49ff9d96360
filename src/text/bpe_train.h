// Trains a byte-level BPE tokenizer (GPT-2 style) and writes it as a Hugging Face tokenizer.json that
// load_tokenizer and the `tokenizers` package load and encode identically (tests/python/test_tokenizer_train.py).
//
//   ids 0..255      the 256 bytes: id b is byte b, as its GPT-2 ByteLevel character (text/byte_level.h)
//   ids 256..       the special tokens in the order given (default just "<|endoftext|>" = 256), added tokens
//                   (special, not normalized) and also in the model's vocab, as `tokenizers`' trainer writes them
//   then            one token per merge, in merge order, until vocab_size ids or no pair occurs min_frequency times
//
// Training text: each file is read whole (valid UTF-8 or an Error naming the file and offset); occurrences of a
// special token are cut out; the rest is split by the GPT-2 regex (ByteLevel pre-tokenizer, no prefix space) into
// words, which are counted. Merges are learned by pair frequency over the word counts (each word weighted by its
// count), with the pair counts updated incrementally after each merge and the best pair taken from a lazy max-heap.
// Ties: the highest count wins; among equal counts the pair with the smallest (left id, right id) — bytes by
// value, merged tokens by age — so the result depends only on the text and the options, never on hash order.
// Progress (words counted, merges done / total) goes to stderr.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace wattmoe {

struct BpeTrainOptions {
  int vocab_size = 8192;  // everything: 256 bytes + special tokens + merges
  int min_frequency = 2;  // a pair seen fewer times than this (weighted by word counts) is not merged
  std::vector<std::string> special_tokens{"<|endoftext|>"};
  bool progress = true;  // lines on stderr
};

struct BpeTrainResult {
  std::vector<std::string> vocab;                             // by id: the raw bytes of each token (specials as is)
  struct Merge {
    int32_t left, right, id;  // id: a new token, or an existing one when the concatenation is already in the vocab
  };
  std::vector<Merge> merges;                                  // by rank
  int num_special = 0;
  uint64_t bytes = 0, words = 0, unique_words = 0;            // training text seen
  double count_seconds = 0, merge_seconds = 0;
};

// Word counting and merging over `texts` (each a document; `names` label them in errors, same length).
BpeTrainResult train_bpe(const std::vector<std::string_view>& texts, const std::vector<std::string>& names,
                         const BpeTrainOptions& opt);
// The same over files (read whole; Error naming an unreadable or non-UTF-8 file).
BpeTrainResult train_bpe_files(const std::vector<std::string>& files, const BpeTrainOptions& opt);

// The tokenizer.json document: ByteLevel pre-tokenizer (GPT-2 regex, no prefix space), BPE model, ByteLevel
// decoder and post-processor, the special tokens as added tokens.
Json bpe_tokenizer_json(const BpeTrainResult& r);
// Writes it atomically (temp + rename): a reader never sees a half-written file.
void write_bpe_tokenizer(const std::string& path, const BpeTrainResult& r);

}  // namespace wattmoe
