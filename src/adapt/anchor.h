// L2 anchor to the source weights: value = ½·‖θ − θ₀‖² over the trainable elements (the ranges), and
// weight·(θ − θ₀) ADDED into grads there — so adaptation is pulled back toward θ₀ (the weights it started from) with
// strength `weight`; the loss term is weight × value, i.e. (w/2)·‖θ − θ₀‖².
#pragma once
#include <vector>

#include "adapt/param_groups.h"

namespace wattmoe {

template <class T>
double l2_anchor(const T* params, const T* source, const std::vector<ParamRange>& ranges, double weight, T* grads);

}  // namespace wattmoe
