#include "text/tokenizer_export.h"

#include <filesystem>

#include "io/atomic_file.h"
#include "io/json.h"
#include "text/tokenizer.h"

namespace wattmoe {

void export_tokenizer(const std::string& spec, const std::string& dir) {
  if (spec == "bytes") return;
  namespace fs = std::filesystem;
  fs::path src = spec;
  std::error_code ec;
  if (fs::is_directory(src, ec)) src /= "tokenizer.json";
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(src.string());
  const fs::path dst = fs::path(dir) / "tokenizer.json";
  if (!fs::equivalent(src, dst, ec)) {
    const std::string text = read_text_file(src.string());
    AtomicFile f(dst.string());
    f.write(text.data(), text.size());
    f.commit();
  }
  Json cfg{{"tokenizer_class", "PreTrainedTokenizerFast"}, {"clean_up_tokenization_spaces", false}};
  if (auto id = tok->bos_id()) cfg["bos_token"] = tok->id_to_token(*id);
  if (auto id = tok->eos_id()) cfg["eos_token"] = tok->id_to_token(*id);
  write_json_file((fs::path(dir) / "tokenizer_config.json").string(), cfg);
}

}  // namespace wattmoe
