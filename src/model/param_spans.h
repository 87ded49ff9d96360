// A model's parameter ranges as core/parallel_spans.h spans, for elementwise work and sums over the trainable ranges.
#pragma once
#include <vector>

#include "core/parallel_spans.h"
#include "model/params.h"

namespace wattmoe {

inline Spans spans_of(const std::vector<ParamRange>& ranges) {  // [offset, offset + numel) each
  Spans s;
  s.reserve(ranges.size());
  for (const ParamRange& r : ranges) s.emplace_back(r.offset, r.offset + r.numel);
  return s;
}

}  // namespace wattmoe
