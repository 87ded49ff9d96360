// A checkpoint directory's tokenizer files, so that the directory loads in Hugging Face transformers
// (AutoTokenizer.from_pretrained(DIR)) as well as in wattmoe (model_tokenizer finds DIR/tokenizer.json):
// DIR/tokenizer.json, a byte-for-byte copy of the tokenizer.json the model was trained with, and
// DIR/tokenizer_config.json naming PreTrainedTokenizerFast and the BOS/EOS tokens. Both written atomically.
#pragma once
#include <string>

namespace wattmoe {

// `spec` as make_tokenizer takes it: "bytes" writes nothing (a byte model has no tokenizer file); a tokenizer.json
// path (or a directory holding one) is loaded first, so a bad file is an Error naming it and nothing is written.
// Copying a directory's own tokenizer.json onto itself is a no-op.
void export_tokenizer(const std::string& spec, const std::string& dir);

}  // namespace wattmoe
