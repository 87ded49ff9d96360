// wattmoe convert: a checkpoint written again with its weights in another dtype (F32 or BF16: round to nearest even,
// which the loader widens back exactly), config.json's torch_dtype to match, and its tokenizer files copied beside
// them. What ships models/mix-small under 15 MB. --out may be --model itself: every file is replaced atomically.
#include <filesystem>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output_flags.h"
#include "core/error.h"
#include "model/checkpoint.h"

namespace wattmoe::cli {

namespace {

// The files a checkpoint directory may hold beside its weights that a model needs to be used (tokenizer).
constexpr const char* kCompanions[] = {"tokenizer.json", "tokenizer_config.json"};

void run_convert(const std::string& dir, const std::string& out, const std::string& dtype_arg,
                 const OutputFlags& o) {
  const DType dtype = dtype_arg == "bf16" ? DType::BF16 : DType::F32;
  const ModelWeights<float> m = load_model<float>(dir);
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool in_place = fs::exists(out, ec) && fs::equivalent(dir, out, ec);
  save_model<float>(out, m.config, m.layout, m.params.data(), dtype);
  std::vector<std::string> copied;
  if (!in_place)
    for (const char* f : kCompanions)
      if (fs::exists(fs::path(dir) / f)) {
        fs::copy_file(fs::path(dir) / f, fs::path(out) / f, fs::copy_options::overwrite_existing, ec);
        WATTMOE_REQUIRE(!ec, "{}: cannot copy {}: {}", out, f, ec.message());
        copied.push_back(f);
      }
  const auto bytes = int64_t(fs::file_size(fs::path(out) / "model.safetensors"));
  std::string from;
  for (const std::string& d : m.stored_dtypes) from += (from.empty() ? "" : ",") + d;
  Json j{{"schema", "wattmoe.convert/1"}, {"model", dir},         {"out", out},
         {"from_dtypes", m.stored_dtypes}, {"dtype", dtype_name(dtype)}, {"bytes", bytes},
         {"copied", copied}};
  emit_result(o, j,
              fmt::format("{} ({}) -> {} as {}: {:.2f} MB of weights{}\n", dir, from, out, dtype_name(dtype),
                          bytes / 1e6, copied.empty() ? "" : fmt::format(", {} copied", fmt::join(copied, ", "))));
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("bf16");
  auto o = std::make_shared<OutputFlags>();
  CLI::App* cmd = app.add_subcommand("convert", "Write a checkpoint again with its weights as F32 or BF16");
  cmd->add_option("--model", *dir, "checkpoint directory (config.json + safetensors)")->required();
  cmd->add_option("--out", *out, "output directory (created; may be --model itself)")->required();
  cmd->add_option("--dtype", *dtype, "weights' dtype: bf16 (round to nearest even) or f32")
      ->check(CLI::IsMember({"bf16", "f32"}))
      ->capture_default_str();
  add_output_flags(cmd, *o);
  cmd->callback([dir, out, dtype, o] { run_convert(*dir, *out, *dtype, *o); });
}

}  // namespace wattmoe::cli
