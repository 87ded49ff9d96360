// The MoE block of TransformerCuda (forward, backward) and the auxiliary router losses. Routing, the route weights'
// renormalisation and its backward run on the host with the CPU model's own code and order of operations; the rows
// (gather, expert FFNs, combine, ∂L/∂weight dot products) run on the GPU. See gpu/transformer_cuda.h.
#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "gpu/device_acts.h"
#include "gpu/transformer_cuda.h"
#include "ops/cuda/dense_ops.h"
#include "ops/cuda/moe_rows.h"
#include "moe/aux_losses.h"
#include "ops/softmax.h"

namespace wattmoe::gpu {

namespace {

void download_into(Context& ctx, const DeviceBuffer<float>& d, std::vector<float>& h) {
  h.resize(d.size());
  if (!h.empty())
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(h.data(), d.data(), sizeof(float) * h.size(), cudaMemcpyDeviceToHost,
                                      ctx.stream()));
  ctx.sync();
}

// d (float or bf16) to the host as float; `staging` holds the widened copy for bf16.
template <class T>
void download_f32(Context& ctx, const DeviceBuffer<T>& d, DeviceBuffer<float>& staging, std::vector<float>& h) {
  if constexpr (std::is_same_v<T, float>) {
    download_into(ctx, d, h);
  } else {
    staging.resize(d.size());
    cuda::convert<float, T>(ctx, d.data(), staging.data(), int64_t(d.size()));
    download_into(ctx, staging, h);
  }
}

}  // namespace

template <class T>
void TransformerCudaT<T>::moe_forward(int l, const RouterSelect<float>& select) {
  const ModelConfig& c = cfg_;
  const LayerView<T>& w = w_.layers[size_t(l)];
  DeviceActs<T>& A = *acts_;
  DeviceLayerActs<T>& a = A.layers[size_t(l)];
  HostRouting& hr = host_[size_t(l)];
  const int64_t N = tokens(), H = c.hidden_size, E = c.num_experts;

  a.router_logits.resize(size_t(N * E)), a.router_probs.resize(size_t(N * E));
  cuda::linear_fwd<T>(ctx_, a.h_ffn.data(), w.router, nullptr, a.router_logits.data(), N, H, E);
  cuda::softmax_fwd<T>(ctx_, a.router_logits.data(), a.router_probs.data(), N, E);
  download_f32(ctx_, a.router_logits, A.f32, hr.logits);
  download_f32(ctx_, a.router_probs, A.f32, hr.probs);
  hr.drouter.assign(size_t(N * E), 0.f);

  // Selection and weights on the host, exactly as Transformer::moe_forward.
  if (select) {
    select(l, hr.logits.data(), hr.probs.data(), N, hr.routing);
    WATTMOE_CHECK(hr.routing.tokens == N && hr.routing.experts == E &&
                  int64_t(hr.routing.expert.size()) == N * hr.routing.k);
  } else {
    select_topk<float>(hr.probs.data(), N, int(E), c.top_k, hr.routing);
  }
  const int k = hr.routing.k;
  hr.weight.resize(size_t(N * k));
  route_weights<float>(hr.routing, hr.probs.data(), c.norm_topk_prob, hr.weight.data());
  hr.dispatch = build_dispatch(hr.routing);
  const Dispatch& d = hr.dispatch;
  const int64_t R = d.rows();
  std::vector<float> row_w(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) row_w[r] = hr.weight[size_t(d.token[r]) * k + d.slot[r]];
  const std::vector<int64_t> row_of = slot_rows(d, N, k);
  a.row_token.upload(d.token, ctx_.stream());
  a.row_weight.upload(row_w, ctx_.stream());
  a.row_of.upload(row_of, ctx_.stream());
  a.slot_weight.upload(hr.weight, ctx_.stream());
  ctx_.sync();  // the host vectors above go out of scope

  expert_rows_forward(l);

  // Σ over slots in slot order (+ the gated shared expert) into a zeroed block, then one add into x (the CPU's sums).
  A.moe_out.resize(size_t(N * H)), A.moe_out.zero(ctx_.stream());
  cuda::sum_rows(ctx_, a.experts.y.data(), a.row_of.data(), a.slot_weight.data(), A.moe_out.data(), N, k, H);
  shared_expert_forward(l);
  cuda::axpy<T>(ctx_, 1.f, A.moe_out.data(), A.x.data(), N * H);
}

template <class T>
void TransformerCudaT<T>::expert_rows_forward(int l) {
  const ModelConfig& c = cfg_;
  DeviceActs<T>& A = *acts_;
  DeviceLayerActs<T>& a = A.layers[size_t(l)];
  const Dispatch& d = host_[size_t(l)].dispatch;
  const int64_t R = d.rows(), H = c.hidden_size, I = c.moe_intermediate_size;
  LoraDims lora;
  const std::vector<FfnView<T>>& experts = row_experts(l, lora);
  a.xe.resize(size_t(R * H));
  a.experts.g.resize(size_t(R * I)), a.experts.u.resize(size_t(R * I)), a.experts.a.resize(size_t(R * I));
  a.experts.y.resize(size_t(R * H));
  cuda::gather_rows(ctx_, a.h_ffn.data(), a.row_token.data(), nullptr, a.xe.data(), R, H);
  experts_fwd(ctx_, experts, d.offsets, a.xe.data(), H, I, a.experts.g.data(), a.experts.u.data(),
              a.experts.a.data(), a.experts.y.data(), lora, A.scratch);
}

template <class T>
void TransformerCudaT<T>::shared_expert_forward(int l) {
  const ModelConfig& c = cfg_;
  const LayerView<T>& w = w_.layers[size_t(l)];
  if (!w.shared.gate) return;  // Qwen2-MoE: + sigmoid(g·x) · shared_expert(x)
  DeviceActs<T>& A = *acts_;
  DeviceLayerActs<T>& a = A.layers[size_t(l)];
  const int64_t N = tokens(), H = c.hidden_size, SI = c.shared_expert_intermediate_size;
  a.shared.g.resize(size_t(N * SI)), a.shared.u.resize(size_t(N * SI)), a.shared.a.resize(size_t(N * SI));
  a.shared.y.resize(size_t(N * H)), a.shared_gate_logit.resize(size_t(N));
  ffn_fwd(ctx_, w.shared, a.h_ffn.data(), N, H, SI, a.shared.g.data(), a.shared.u.data(), a.shared.a.data(),
          a.shared.y.data(), {}, A.scratch);
  cuda::linear_fwd<T>(ctx_, a.h_ffn.data(), w.shared_gate, nullptr, a.shared_gate_logit.data(), N, H, 1);
  cuda::gated_add_fwd<T>(ctx_, a.shared_gate_logit.data(), a.shared.y.data(), A.moe_out.data(), N, H);
}

template <class T>
void TransformerCudaT<T>::moe_backward(int l, bool need_dh) {
  const ModelConfig& c = cfg_;
  const LayerView<T>& w = w_.layers[size_t(l)];
  const LayerView<T>& g = g_.layers[size_t(l)];
  DeviceActs<T>& A = *acts_;
  DeviceLayerActs<T>& a = A.layers[size_t(l)];
  HostRouting& hr = host_[size_t(l)];
  const int64_t N = tokens(), H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  // After a fused forward the rows were never built: lay them out from the device routing (which came to the host in
  // the forward's one copy) and recompute the experts' activations, as the host path's forward keeps them.
  if (fused_last_) fused_rows_for_backward(l);
  LoraDims lora;
  const std::vector<FfnView<T>>& experts = row_experts(l, lora);
  const int k = hr.routing.k;
  const Dispatch& d = hr.dispatch;
  const int64_t R = d.rows();
  const T* dout = A.dx.data();  // ∂L/∂(layer output)
  T* dh = A.dh.data();          // zeroed by the caller

  // Routed experts: dy_r = weight_r · dout[token_r]; ∂L/∂weight_r = ⟨dout[token_r], y_r⟩ (to the host for its router
  // backward; the fused path's stays on the device).
  const bool need_dweight = need_dh || g.router;
  std::vector<float> dweight(size_t(N * k), 0.f);
  if (need_dweight && R > 0) {
    A.dweight_rows.resize(size_t(R));
    cuda::row_dots(ctx_, dout, a.row_token.data(), a.experts.y.data(), A.dweight_rows.data(), R, H);
    if (!fused_last_) {
      std::vector<float> dw;
      download_into(ctx_, A.dweight_rows, dw);
      for (int64_t r = 0; r < R; ++r) dweight[size_t(d.token[r]) * k + d.slot[r]] = dw[r];
    }
  }
  bool any_expert = need_dh;
  for (int64_t e = 0; e < E && !any_expert; ++e) any_expert = any_grad(g.experts[e]);
  if (any_expert && R > 0) {
    A.dy_rows.resize(size_t(R * H));
    cuda::gather_rows(ctx_, dout, a.row_token.data(), a.row_weight.data(), A.dy_rows.data(), R, H);
    if (need_dh) A.dxe.resize(size_t(R * H)), A.dxe.zero(ctx_.stream());
    experts_bwd(ctx_, experts, g.experts, d.offsets, a.xe.data(), H, I, a.experts.g.data(), a.experts.u.data(),
                a.experts.a.data(), A.dy_rows.data(), need_dh ? A.dxe.data() : nullptr, lora, A.scratch);
    if (need_dh) {  // dh[t] += its rows of dxe in row order (as the CPU adds them)
      hr.rows_sorted = slot_rows_in_row_order(d, N, k);  // kept by hr until the next forward: no wait for the copy
      a.row_of_sorted.upload(hr.rows_sorted, ctx_.stream());  // sum_rows skips the −1 entries
      cuda::sum_rows(ctx_, A.dxe.data(), a.row_of_sorted.data(), nullptr, dh, N, k, H);
    }
  }

  // Weights → router probabilities (w_s = p_s, or p_s / Σ p when renormalised) → logits: on the device after a fused
  // forward (the routing is there; drouter, the objectives' and aux losses' part, goes up), else on the host.
  if ((need_dh || g.router) && fused_last_) {
    // drouter is empty when nothing read the router after the forward (no aux losses, no router objective).
    A.drouter_f32.upload(hr.drouter, ctx_.stream());
    A.drouter_logits.resize(size_t(N * E));
    fused_router_backward(l, hr.drouter.empty() ? nullptr : A.drouter_f32.data(), A.drouter_logits.data());
    cuda::linear_bwd<T>(ctx_, a.h_ffn.data(), w.router, A.drouter_logits.data(), need_dh ? dh : nullptr, g.router,
                        nullptr, N, H, E);
  } else if (need_dh || g.router) {
    std::vector<float> dprobs(size_t(N * E), 0.f);
    route_weights_bwd<float>(hr.routing, hr.probs.data(), hr.weight.data(), dweight.data(), c.norm_topk_prob,
                             dprobs.data());
    std::vector<float> dlogits = hr.drouter;  // auxiliary losses' contribution
    ops::softmax_bwd<float>(hr.probs.data(), dprobs.data(), dlogits.data(), N, E);
    if constexpr (std::is_same_v<T, float>) {
      A.drouter_logits.upload(dlogits, ctx_.stream());
    } else {
      A.drouter_f32.upload(dlogits, ctx_.stream());
      A.drouter_logits.resize(dlogits.size());
      cuda::convert<T, float>(ctx_, A.drouter_f32.data(), A.drouter_logits.data(), int64_t(dlogits.size()));
    }
    cuda::linear_bwd<T>(ctx_, a.h_ffn.data(), w.router, A.drouter_logits.data(), need_dh ? dh : nullptr, g.router,
                            nullptr, N, H, E);
    ctx_.sync();  // `dlogits` goes out of scope
  }

  if (w.shared.gate && (need_dh || any_grad(g.shared) || g.shared_gate)) {
    const int64_t SI = c.shared_expert_intermediate_size;
    A.dys.resize(size_t(N * H)), A.dgl.resize(size_t(N));
    A.dys.zero(ctx_.stream()), A.dgl.zero(ctx_.stream());
    cuda::gated_add_bwd<T>(ctx_, a.shared_gate_logit.data(), a.shared.y.data(), dout, A.dys.data(), A.dgl.data(),
                               N, H);
    if (need_dh || any_grad(g.shared))
      ffn_bwd(ctx_, w.shared, g.shared, a.h_ffn.data(), N, H, SI, a.shared.g.data(), a.shared.u.data(),
              a.shared.a.data(), A.dys.data(), need_dh ? dh : nullptr, {}, A.scratch);
    cuda::linear_bwd<T>(ctx_, a.h_ffn.data(), w.shared_gate, A.dgl.data(), need_dh ? dh : nullptr,
                            g.shared_gate, nullptr, N, H, 1);
  }
}

template <class T>
RouterViews<float> TransformerCudaT<T>::router_views() {
  if (fused_last_) fused_router_to_host();  // the fused forward kept them on the device
  RouterViews<float> v;
  v.tokens = tokens(), v.experts = cfg_.num_experts, v.top_k = cfg_.top_k;
  v.layers.resize(host_.size());
  for (size_t l = 0; l < host_.size(); ++l) {
    HostRouting& hr = host_[l];
    if (!hr.probs.empty()) v.layers[l] = {hr.logits.data(), hr.probs.data(), hr.drouter.data()};
  }
  return v;
}

template <class T>
AuxLossValues TransformerCudaT<T>::router_aux_losses(double lb_coef, double z_coef) {
  return wattmoe::router_aux_losses<float>(router_views(), lb_coef, z_coef);
}

template void TransformerCudaT<float>::expert_rows_forward(int);
template void TransformerCudaT<bf16>::expert_rows_forward(int);
template void TransformerCudaT<float>::shared_expert_forward(int);
template void TransformerCudaT<bf16>::shared_expert_forward(int);
template void TransformerCudaT<float>::moe_forward(int, const RouterSelect<float>&);
template void TransformerCudaT<bf16>::moe_forward(int, const RouterSelect<float>&);
template void TransformerCudaT<float>::moe_backward(int, bool);
template void TransformerCudaT<bf16>::moe_backward(int, bool);
template AuxLossValues TransformerCudaT<float>::router_aux_losses(double, double);
template RouterViews<float> TransformerCudaT<float>::router_views();
template RouterViews<float> TransformerCudaT<bf16>::router_views();
template AuxLossValues TransformerCudaT<bf16>::router_aux_losses(double, double);

}  // namespace wattmoe::gpu
