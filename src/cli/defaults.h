// Defaults shared by the subcommands: the shipped model (the tokenizer that goes with a checkpoint is the library's
// model_tokenizer, text/tokenizer.h).
#pragma once
#include <memory>
#include <string>

#include "text/tokenizer.h"

namespace wattmoe::cli {

// models/kjv-small in the source tree (found relative to the executable, or WATTMOE_MODEL when set).
std::string default_model_dir();

}  // namespace wattmoe::cli
