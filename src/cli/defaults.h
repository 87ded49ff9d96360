// Defaults shared by the subcommands: the shipped model, the tokenizer that goes with a checkpoint, and --device.
#pragma once
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace wattmoe::cli {

// models/kjv-small in the source tree (found relative to the executable, or WATTMOE_MODEL when set).
std::string default_model_dir();

// `spec` if given ("bytes" or a tokenizer.json path); else DIR/tokenizer.json when present; else bytes. Checks the
// tokenizer's vocabulary fits the model.
std::unique_ptr<Tokenizer> model_tokenizer(const std::string& model_dir, const std::string& spec, int model_vocab);

}  // namespace wattmoe::cli
