// Model checkpoints in the HF layout (config.json + safetensors): load into a flat fp32/fp64 parameter buffer, save
// back so that HF tools read what we write.
#pragma once
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "model/params.h"

namespace wattmoe {

template <class T>
struct ModelWeights {
  std::string dir;
  ModelConfig config;
  ParamLayout layout;
  std::vector<T> params;  // layout.total() values
  std::vector<std::string> stored_dtypes;  // distinct dtypes found in the checkpoint ("BF16", ...)
};

// Loads DIR/config.json and every tensor the config implies. Errors name the file and the tensor: a tensor that is
// missing, has a shape or dtype that disagrees with config.json, or holds non-finite values. Tensors the engine does
// not use (e.g. rotary inv_freq buffers) are ignored with a warning.
template <class T>
ModelWeights<T> load_model(const std::string& dir);

// Writes DIR/config.json and DIR/model.safetensors (HF names), creating DIR if needed. dtype F32, or BF16 (each value
// rounded to nearest even, as torch's .to(torch.bfloat16); load_model widens it back exactly); config.json's
// torch_dtype says which. Other dtypes: Error.
template <class T>
void save_model(const std::string& dir, const ModelConfig& c, const ParamLayout& layout, const T* params,
                DType dtype = DType::F32);

}  // namespace wattmoe
