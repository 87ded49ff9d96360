// Causal GQA attention: float vs double, gradient check of q, k, v through the saved probabilities (backward is
// checked against finite differences of the whole forward, in double), accumulate semantics, GQA groups 1, 2, 4,
// Tq < Tk with pos0 > 0 (KV cache), Tq = 1, keys beyond the causal window, padded strides; probabilities and a
// decode step against the full computation.
#include "ops/attention.h"

#include "op_harness.h"

namespace wattmoe::test {
namespace {

struct AttentionCase : OpCaseBase {
  int64_t Tq, Tk, pos0, nh, nkv, hd, q_pad = 0, kv_pad = 0;
  double range = 1.5;  // q, k values: larger ranges give peakier softmax rows
  ops::AttnShape shape() const { return {Tq, Tk, pos0, nh, nkv, hd, nh * hd + q_pad, nkv * hd + kv_pad}; }
  std::string name() const {
    return fmt::format("attention Tq={} Tk={} pos0={} heads={} kv={} hd={} pads={},{}", Tq, Tk, pos0, nh, nkv, hd,
                       q_pad, kv_pad);
  }
  std::vector<InputSpec> inputs() const {
    const auto s = shape();
    return {{"q", Tq * s.q_stride, -range, range}, {"k", Tk * s.kv_stride, -range, range}, {"v", Tk * s.kv_stride}};
  }
  std::vector<int64_t> outputs() const { return {Tq * shape().q_stride}; }
  std::vector<int64_t> saved() const { return {nh * Tq * Tk}; }
  // Scores: dots over hd; softmax: a sum of up to Tk exponentials; output: a weighted sum over Tk.
  double fwd_tol() const { return fp32_tol(hd + 2 * Tk, 32); }
  // dP: dots over hd and a sum over Tk; dq sums over Tk keys; dk, dv over the Tq·group queries that see them.
  double bwd_tol() const { return fp32_tol(hd + 2 * Tk + Tq * (nh / nkv), 32); }
  template <class T>
  void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>& saved) const {
    ops::attention_fwd<T>(in[0].data(), in[1].data(), in[2].data(), out[0].data(), saved[0].data(), shape());
  }
  template <class T>
  void backward(const Bufs<T>& in, const Bufs<T>&, const Bufs<T>& saved, const Bufs<T>& d,
                const std::vector<T*>& g) const {
    ops::attention_bwd<T>(in[0].data(), in[1].data(), in[2].data(), saved[0].data(), d[0].data(), g[0], g[1], g[2],
                          shape());
  }
};

TEST(OpAttention, Cases) {
  //                        Tq  Tk pos0 nh nkv hd
  run_op_case(AttentionCase{{}, 1, 1, 0, 1, 1, 2});
  run_op_case(AttentionCase{{}, 7, 7, 0, 4, 4, 8});      // MHA (group 1)
  run_op_case(AttentionCase{{}, 9, 9, 0, 4, 2, 6});      // GQA group 2
  run_op_case(AttentionCase{{}, 5, 5, 0, 8, 2, 4});      // GQA group 4
  run_op_case(AttentionCase{{}, 6, 6, 0, 4, 1, 8});      // MQA
  run_op_case(AttentionCase{{}, 3, 8, 5, 4, 2, 8});      // KV cache: 5 cached tokens, 3 new
  run_op_case(AttentionCase{{}, 1, 11, 10, 4, 2, 8});    // decode step: Tq = 1 at position 10
  run_op_case(AttentionCase{{}, 1, 6, 3, 2, 1, 4});      // Tk > pos0 + Tq: keys 4, 5 are never visible
  run_op_case(AttentionCase{{}, 4, 6, 2, 4, 2, 6, 3, 5});  // padded q and kv rows
  run_op_case(AttentionCase{{}, 5, 5, 0, 2, 1, 4, 0, 0, 4.0});  // peaky rows (scores up to ~16)
}

template <class T>
struct Inputs {
  std::vector<T> q, k, v;
};

Inputs<double> random_qkv(const ops::AttnShape& s, uint64_t seed) {
  Rng rng(seed);
  Inputs<double> in;
  in.q.resize(size_t(s.Tq * s.q_stride)), in.k.resize(size_t(s.Tk * s.kv_stride)), in.v.resize(in.k.size());
  for (auto* v : {&in.q, &in.k, &in.v})
    for (auto& x : *v) x = rng.normal();
  return in;
}

TEST(OpAttention, ProbsAreCausalDistributions) {
  const ops::AttnShape s{4, 9, 5, 4, 2, 8, 32, 16};
  const Inputs<double> in = random_qkv(s, 21);
  std::vector<double> out(size_t(s.Tq * s.q_stride)), probs(size_t(s.n_heads * s.Tq * s.Tk), -1.0);
  ops::attention_fwd<double>(in.q.data(), in.k.data(), in.v.data(), out.data(), probs.data(), s);
  for (int64_t h = 0; h < s.n_heads; ++h)
    for (int64_t t = 0; t < s.Tq; ++t) {
      const double* p = &probs[size_t((h * s.Tq + t) * s.Tk)];
      double sum = 0;
      for (int64_t j = 0; j < s.Tk; ++j) {
        if (j > s.pos0 + t) {
          EXPECT_EQ(p[j], 0.0) << "masked key " << j << " of query " << t << " head " << h;
        } else {
          EXPECT_GT(p[j], 0.0);
        }
        sum += p[j];
      }
      EXPECT_NEAR(sum, 1.0, 1e-14);
    }
  // Inference (probs null) gives the same output.
  std::vector<double> out2(out.size());
  ops::attention_fwd<double>(in.q.data(), in.k.data(), in.v.data(), out2.data(), nullptr, s);
  EXPECT_EQ(out, out2);
}

TEST(OpAttention, MatchesNaiveDefinitionWithGqaMapping) {
  // Head h reads kv head h / (heads / kv) (consecutive query heads share a kv head), scale 1/√hd.
  const ops::AttnShape s{3, 5, 2, 6, 2, 4, 24, 8};
  const Inputs<double> in = random_qkv(s, 22);
  std::vector<double> out(size_t(s.Tq * s.q_stride));
  ops::attention_fwd<double>(in.q.data(), in.k.data(), in.v.data(), out.data(), nullptr, s);
  const int64_t group = s.n_heads / s.n_kv;
  for (int64_t h = 0; h < s.n_heads; ++h)
    for (int64_t t = 0; t < s.Tq; ++t) {
      const int64_t kvh = h / group, n = s.pos0 + t + 1;
      std::vector<double> w(static_cast<size_t>(n));
      double z = 0;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < s.hd; ++d) dot += in.q[t * s.q_stride + h * s.hd + d] * in.k[j * s.kv_stride + kvh * s.hd + d];
        z += (w[j] = std::exp(dot / std::sqrt(double(s.hd))));
      }
      for (int64_t d = 0; d < s.hd; ++d) {
        double o = 0;
        for (int64_t j = 0; j < n; ++j) o += w[j] / z * in.v[j * s.kv_stride + kvh * s.hd + d];
        EXPECT_NEAR(out[t * s.q_stride + h * s.hd + d], o, 1e-13);
      }
    }
}

TEST(OpAttention, DecodeStepEqualsLastRowOfFullAttention) {
  // The KV-cache path: query t alone at pos0 = t over keys 0..t equals row t of the full causal attention. Not
  // bitwise: the score and output products are GEMMs whose blocking depends on the row count; in double the
  // difference is a few ulps of values of order 1.
  const ops::AttnShape full{8, 8, 0, 4, 2, 6, 24, 12};
  const Inputs<double> in = random_qkv(full, 23);
  std::vector<double> out(size_t(full.Tq * full.q_stride));
  ops::attention_fwd<double>(in.q.data(), in.k.data(), in.v.data(), out.data(), nullptr, full);
  for (int64_t t = 0; t < full.Tq; ++t) {
    const ops::AttnShape step{1, t + 1, t, 4, 2, 6, 24, 12};
    std::vector<double> o(size_t(full.q_stride));
    ops::attention_fwd<double>(&in.q[size_t(t * full.q_stride)], in.k.data(), in.v.data(), o.data(), nullptr, step);
    for (int64_t d = 0; d < full.q_stride; ++d) EXPECT_NEAR(o[d], out[t * full.q_stride + d], 1e-14) << "t " << t;
  }
}

}  // namespace
}  // namespace wattmoe::test
