#include "model/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/log.h"
#include "io/safetensors.h"

namespace wattmoe {

template <class T>
ModelWeights<T> load_model(const std::string& dir) {
  ModelWeights<T> m;
  m.dir = dir;
  m.config = load_model_config(dir);
  m.layout = ParamLayout::build(m.config);
  CheckpointReader ck = CheckpointReader::open(dir);
  std::set<std::string> dtypes;
  // Validate every tensor against config.json before allocating: a config that claims a huge model next to a small
  // checkpoint must fail with a message, not an allocation failure.
  for (const ParamSpec& s : m.layout.specs()) {
    WATTMOE_REQUIRE(ck.has(s.name), "{}: missing tensor {} (config.json implies shape {})", dir, s.name,
                    shape_str(s.shape));
    const TensorInfo& info = ck.info(s.name);
    WATTMOE_REQUIRE(info.shape == s.shape, "{}: tensor {} has shape {} but config.json implies {}", dir, s.name,
                    shape_str(info.shape), shape_str(s.shape));
    WATTMOE_REQUIRE(dtype_is_float(info.dtype), "{}: tensor {} has dtype {}, expected a float type", dir, s.name,
                    dtype_name(info.dtype));
    dtypes.insert(std::string(dtype_name(info.dtype)));
  }
  m.params.assign(size_t(m.layout.total()), T(0));
  for (const ParamSpec& s : m.layout.specs()) {
    Tensor t = ck.get(s.name);
    T* dst = m.params.data() + s.offset;
    if constexpr (std::is_same_v<T, double>) {
      convert_to_f64(t.dtype(), t.raw(), dst, size_t(s.numel));
    } else {
      convert_to_f32(t.dtype(), t.raw(), dst, size_t(s.numel));
    }
    for (int64_t i = 0; i < s.numel; ++i)
      WATTMOE_REQUIRE(std::isfinite(double(dst[i])), "{}: tensor {} holds a non-finite value at index {}", dir, s.name, i);
  }
  int unused = 0;
  for (const std::string& n : ck.names())
    if (!m.layout.find(n)) ++unused;
  if (unused) log_warn("{}: {} tensors in the checkpoint are not used by the engine", dir, unused);
  m.stored_dtypes.assign(dtypes.begin(), dtypes.end());
  return m;
}

template <class T>
void save_model(const std::string& dir, const ModelConfig& c, const ParamLayout& layout, const T* params,
                DType dtype) {
  WATTMOE_REQUIRE(dtype == DType::F32 || dtype == DType::BF16, "{}: checkpoints are written as F32 or BF16, not {}",
                  dir, dtype_name(dtype));
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  WATTMOE_REQUIRE(!ec, "{}: cannot create directory: {}", dir, ec.message());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const ParamSpec& s : layout.specs()) {
    Tensor t = Tensor::zeros(dtype, s.shape);
    const T* from = params + s.offset;
    if (dtype == DType::F32)
      std::copy(from, from + s.numel, t.data<float>());
    else
      std::transform(from, from + s.numel, static_cast<uint16_t*>(t.raw()), [](T v) { return f32_to_bf16(float(v)); });
    tensors.emplace_back(s.name, std::move(t));
  }
  write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  ModelConfig out = c;
  out.torch_dtype = dtype == DType::F32 ? "float32" : "bfloat16";
  write_json_file(dir + "/config.json", model_config_to_json(out));
}

template ModelWeights<float> load_model<float>(const std::string&);
template ModelWeights<double> load_model<double>(const std::string&);
template void save_model<float>(const std::string&, const ModelConfig&, const ParamLayout&, const float*, DType);
template void save_model<double>(const std::string&, const ModelConfig&, const ParamLayout&, const double*, DType);

}  // namespace wattmoe
