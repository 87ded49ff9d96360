#include "adapt/anchor.h"

namespace wattmoe {

template <class T>
double l2_anchor(const T* params, const T* source, const std::vector<ParamRange>& ranges, double weight, T* grads) {
  double ss = 0;
  for (const ParamRange& r : ranges)
    for (int64_t i = r.offset; i < r.offset + r.numel; ++i) {
      const double d = double(params[i]) - double(source[i]);
      ss += d * d;
      if (grads && weight != 0) grads[i] += T(weight * d);
    }
  return 0.5 * ss;
}

template double l2_anchor<float>(const float*, const float*, const std::vector<ParamRange>&, double, float*);
template double l2_anchor<double>(const double*, const double*, const std::vector<ParamRange>&, double, double*);

}  // namespace wattmoe
