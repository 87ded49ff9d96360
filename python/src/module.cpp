// wattmoe._core: the module's entry point — the error type, the version, the model and the energy meter.
#include "bindings.h"

#include "core/error.h"

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  m.doc() = "wattmoe's engine (use the wattmoe package, not this module)";
  m.attr("__version__") = WATTMOE_VERSION;
  // Bad input or configuration: the engine's own message, as the command line prints it after "wattmoe: error: ".
  nb::exception<wattmoe::Error>(m, "Error", PyExc_RuntimeError);
  wattmoe::py::bind_model(m);
  wattmoe::py::bind_meter(m);
  wattmoe::py::bind_tokenizer(m);
}
