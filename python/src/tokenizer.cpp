// wattmoe._core.Tokenizer: a tokenizer on its own (text/tokenizer.h's make_tokenizer: "bytes" or a tokenizer.json),
// the encoder and decoder every command uses, without a model.
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "bindings.h"
#include "text/tokenizer.h"

namespace wattmoe::py {

using namespace nb::literals;

void bind_tokenizer(nb::module_& m) {
  nb::class_<Tokenizer>(m, "Tokenizer")
      .def_static("load", [](const std::string& spec) { return make_tokenizer(spec); }, "spec"_a)
      .def("encode", [](const Tokenizer& t, const std::string& text) { return t.encode(text); }, "text"_a)
      .def(
          "decode",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special) {
            const std::string s = t.decode(std::span<const int32_t>(ids), skip_special);
            return nb::bytes(s.data(), s.size());
          },
          "ids"_a, "skip_special"_a = false)
      .def_prop_ro("vocab_size", &Tokenizer::vocab_size)
      .def_prop_ro("bos_id", &Tokenizer::bos_id)
      .def_prop_ro("eos_id", &Tokenizer::eos_id)
      .def("token_to_id", &Tokenizer::token_to_id, "token"_a)
      .def("id_to_token", &Tokenizer::id_to_token, "id"_a)
      .def("describe", &Tokenizer::describe);
}

}  // namespace wattmoe::py
