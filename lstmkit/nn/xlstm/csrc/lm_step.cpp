// One token through a whole small xLSTMLM in C++, for lstmkit/nn/xlstm/lm_step.py (which builds this file on first
// use and holds the equations in its docstring). At E = 128 one token is ~120 small ATen operations in Python, each
// costing more in dispatch than in arithmetic; here it is one call, all of it plain loops over (batch row, feature)
// in T (float or double): at these widths a matrix-vector product takes less time than dispatching ATen's mm.
//
// B batch, E width, I mLSTM inner width, NH heads, DH head size, K conv taps, F feed-forward width, V vocabulary.
//   tokens (B,) int64      embedding (V, E)       params: per block M_PER or S_PER tensors (empty where absent)
//   state_in: per mLSTM block conv (B, K-1, I), C (B, NH, DH, DH), n (B, NH, DH), m (B, NH);
//             per sLSTM block conv (B, K-1, E) (empty without one), h, c, n, m (B, E)
//   returns [logits (B, V), the new state tensors in state_in's order], or [] when the slow path would refuse the
//   state (a shape or dtype not the model's) or a value (non-finite), or a part is in another dtype or off the CPU:
//   the caller then takes the slow path, which raises its error (or computes what it can).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace {

using at::Tensor;

enum MParam {
  M_NORM_W, M_NORM_B, M_UP_W, M_UP_B, M_CONV_W, M_CONV_B, M_Q_W, M_Q_B, M_K_W, M_K_B, M_V_W, M_V_B,
  M_I_W, M_I_B, M_F_W, M_F_B, M_OUTNORM_W, M_OUTNORM_B, M_SKIP, M_DOWN_W, M_DOWN_B, M_PER
};
enum SParam {
  S_NORM_W, S_NORM_B, S_CONV_W, S_CONV_B, S_I_W, S_I_B, S_F_W, S_F_B, S_Z_W, S_Z_B, S_O_W, S_O_B, S_R, S_BIAS,
  S_OUTNORM_W, S_OUTNORM_B, S_FFN_NORM_W, S_FFN_NORM_B, S_UP_W, S_UP_B, S_DOWN_W, S_DOWN_B, S_PER
};
enum Activation { GELU, RELU, RELU2, SIGMOID, SWISH, SELU };

template <typename T> const T* ptr(const Tensor& t) { return t.numel() ? t.const_data_ptr<T>() : nullptr; }

// y (B, N) = x (B, Kd) Wᵀ: four rows of W at a time against every batch row, so the batch shares one pass over
// the weights; each a vectorised dot product (`omp simd` reorders the sums; the tests hold the result to the Python
// path's within 1e-12 in float64). Compiled for x86-64-v3 (AVX2, FMA) where the processor has it, else x86-64.
template <typename T>
__attribute__((target_clones("arch=x86-64-v3", "default"))) void matmul(const T* x, int64_t B, const T* w, int64_t N,
                                                                         int64_t Kd, T* y) {
  int64_t n = 0;
  for (; n + 4 <= N; n += 4) {
    const T* w0 = w + n * Kd;
    const T* w1 = w0 + Kd;
    const T* w2 = w1 + Kd;
    const T* w3 = w2 + Kd;
    for (int64_t r = 0; r < B; ++r) {
      const T* xr = x + r * Kd;
      T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
      for (int64_t k = 0; k < Kd; ++k) {
        a0 += w0[k] * xr[k];
        a1 += w1[k] * xr[k];
        a2 += w2[k] * xr[k];
        a3 += w3[k] * xr[k];
      }
      T* yr = y + r * N + n;
      yr[0] = a0, yr[1] = a1, yr[2] = a2, yr[3] = a3;
    }
  }
  for (; n < N; ++n)
    for (int64_t r = 0; r < B; ++r) {
      const T* wn = w + n * Kd;
      const T* xr = x + r * Kd;
      T a = 0;
#pragma omp simd reduction(+ : a)
      for (int64_t k = 0; k < Kd; ++k) a += wn[k] * xr[k];
      y[r * N + n] = a;
    }
}

// y (B, N) = x (B, Kd) Wᵀ + bias.
template <typename T>
void dense(const T* x, int64_t B, const Tensor& W, const Tensor& bias, T* y) {
  const int64_t N = W.size(0), Kd = W.size(1);
  matmul<T>(x, B, W.const_data_ptr<T>(), N, Kd, y);
  if (const T* b = ptr<T>(bias))
    for (int64_t r = 0; r < B; ++r)
      for (int64_t n = 0; n < N; ++n) y[r * N + n] += b[n];
}

// y[h, o] = Σ_i W[h, o, i] x[h, i] (+ b): the head-wise (block-diagonal) map on one row, W (G, O, In).
template <typename T>
void headwise(const T* x, const Tensor& W, const Tensor& bias, T* y) {
  const int64_t G = W.size(0), O = W.size(1), In = W.size(2);
  const T* w = W.const_data_ptr<T>();
  const T* b = ptr<T>(bias);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t o = 0; o < O; ++o) {
      T acc = 0;
      for (int64_t i = 0; i < In; ++i) acc += w[(g * O + o) * In + i] * x[g * In + i];
      y[g * O + o] = b ? acc + b[g * O + o] : acc;
    }
}

// Layer norm of each of `groups` groups of S features of one row, then one weight (and bias) over all of them.
template <typename T>
void group_norm(const T* x, int64_t groups, int64_t S, const Tensor& w, const Tensor& bias, double eps, T* y) {
  const T* wv = w.const_data_ptr<T>();
  const T* bv = ptr<T>(bias);
  for (int64_t g = 0; g < groups; ++g) {
    const T* row = x + g * S;
    T mean = 0, var = 0;
    for (int64_t e = 0; e < S; ++e) mean += row[e];
    mean /= T(S);
    for (int64_t e = 0; e < S; ++e) var += (row[e] - mean) * (row[e] - mean);
    const T scale = T(1) / std::sqrt(var / T(S) + T(eps));
    for (int64_t e = 0; e < S; ++e) {
      const int64_t j = g * S + e;
      y[j] = (row[e] - mean) * scale * wv[j] + (bv ? bv[j] : T(0));
    }
  }
}

template <typename T> T silu(T v) { return v / (T(1) + std::exp(-v)); }
template <typename T> T sigmoid(T v) { return T(1) / (T(1) + std::exp(-v)); }
template <typename T> T log_sigmoid(T v) { return std::min(v, T(0)) - std::log1p(std::exp(-std::abs(v))); }

template <typename T> T activate(T v, int64_t act) {
  switch (act) {
    case GELU: return T(0.5) * v * (T(1) + std::erf(v * T(M_SQRT1_2)));
    case RELU: return std::max(v, T(0));
    case RELU2: return std::max(v, T(0)) * std::max(v, T(0));
    case SIGMOID: return sigmoid(v);
    case SWISH: return silu(v);
    default: {
      const T alpha = T(1.6732632423543772848170429916717), scale = T(1.0507009873554804934193349852946);
      return scale * (v > 0 ? v : alpha * std::expm1(v));
    }
  }
}

// The causal depthwise convolution of one row: y = b + Σ_j w[:, j] ⊙ window_j, window = [history (K-1, D); x];
// the new history (the last K-1 rows of the window) is written to `next`.
template <typename T>
void conv_step(const T* x, const T* history, const Tensor& W, const Tensor& bias, int64_t D, T* y, T* next) {
  const int64_t K = W.size(1);
  const T* w = W.const_data_ptr<T>();
  const T* b = ptr<T>(bias);
  for (int64_t d = 0; d < D; ++d) {
    T acc = w[d * K + K - 1] * x[d];
    for (int64_t j = 0; j + 1 < K; ++j) acc += w[d * K + j] * history[j * D + d];
    y[d] = b ? acc + b[d] : acc;
  }
  for (int64_t j = 0; j + 2 < K; ++j) std::copy_n(history + (j + 1) * D, D, next + j * D);
  if (K > 1) std::copy_n(x, D, next + (K - 2) * D);
}

template <typename T> bool finite(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}
template <typename T> bool finite_or_neg_inf(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(x[i]) || x[i] == std::numeric_limits<T>::infinity()) return false;
  return true;
}

// The mLSTM block on x (B, E), in place; its new state into out[0..3]. False when the slow path would refuse.
template <typename T>
bool mlstm_block(T* x, int64_t B, int64_t E, const Tensor* p, const Tensor* in, Tensor* out, int64_t NH,
                 const double* eps) {
  const int64_t I = p[M_SKIP].numel(), DH = I / NH, K = p[M_CONV_W].size(1);
  // stage by stage over the batch rows, so that each product makes one pass over its weights for all of them
  std::vector<T> xn(B * E), up(B * 2 * I), xc(B * I), qkv(B * 3 * I), gi(B * NH), gf(B * NH), h(I), hn(B * I), y(B * E);
  for (int64_t r = 0; r < B; ++r) group_norm<T>(x + r * E, 1, E, p[M_NORM_W], p[M_NORM_B], eps[0], xn.data() + r * E);
  dense<T>(xn.data(), B, p[M_UP_W], p[M_UP_B], up.data());
  for (int64_t r = 0; r < B; ++r) {
    const T* xm = up.data() + r * 2 * I;
    T* xcr = xc.data() + r * I;
    conv_step<T>(xm, in[0].const_data_ptr<T>() + r * (K - 1) * I, p[M_CONV_W], p[M_CONV_B], I, xcr,
                 out[0].mutable_data_ptr<T>() + r * (K - 1) * I);
    for (int64_t j = 0; j < I; ++j) xcr[j] = silu(xcr[j]);
    T* q = qkv.data() + r * 3 * I;
    headwise<T>(xcr, p[M_Q_W], p[M_Q_B], q);
    headwise<T>(xcr, p[M_K_W], p[M_K_B], q + I);
    headwise<T>(xm, p[M_V_W], p[M_V_B], q + 2 * I);
  }
  dense<T>(qkv.data(), B, p[M_I_W], p[M_I_B], gi.data());
  dense<T>(qkv.data(), B, p[M_F_W], p[M_F_B], gf.data());
  for (int64_t r = 0; r < B; ++r) {
    const T* q = qkv.data() + r * 3 * I;
    const T* k = q + I;
    const T* v = k + I;
    const T* z = up.data() + r * 2 * I + I;
    const T* ig = gi.data() + r * NH;
    const T* fg = gf.data() + r * NH;
    const T* C0 = in[1].const_data_ptr<T>() + r * NH * DH * DH;
    const T* n0 = in[2].const_data_ptr<T>() + r * NH * DH;
    const T* m0 = in[3].const_data_ptr<T>() + r * NH;
    if (!finite(q, 3 * I) || !finite(ig, NH) || !finite_or_neg_inf(fg, NH) ||
        !finite(C0, NH * DH * DH) || !finite(n0, NH * DH) || !finite_or_neg_inf(m0, NH))
      return false;
    T* C = out[1].mutable_data_ptr<T>() + r * NH * DH * DH;
    T* n = out[2].mutable_data_ptr<T>() + r * NH * DH;
    T* m = out[3].mutable_data_ptr<T>() + r * NH;
    const T floor = T(1) - std::log(std::numeric_limits<T>::max()), scale = T(1) / std::sqrt(T(DH));
    for (int64_t hd = 0; hd < NH; ++hd) {
      // m' = max(log σ(f̃) + m, ĩ);  f = exp(log σ(f̃) + m - m'),  i = exp(ĩ - m')
      const T log_f = log_sigmoid(fg[hd]);
      const T m_new = std::max(log_f + m0[hd], ig[hd]);
      const T f_s = std::exp(log_f + m0[hd] - m_new), i_s = std::exp(ig[hd] - m_new);
      m[hd] = m_new;
      const T* qh = q + hd * DH;
      const T* kh = k + hd * DH;
      const T* vh = v + hd * DH;
      T qn = 0;
      for (int64_t a = 0; a < DH; ++a) {
        n[hd * DH + a] = f_s * n0[hd * DH + a] + i_s * kh[a];
        qn += qh[a] * scale * n[hd * DH + a];
      }
      T* hh = h.data() + hd * DH;
      std::fill_n(hh, DH, T(0));
      for (int64_t a = 0; a < DH; ++a) {  // C' = f C + (i k) vᵀ;  num = q̂ᵀ C'
        const T ik = i_s * kh[a], qa = qh[a] * scale;
        const T* c_in = C0 + (hd * DH + a) * DH;
        T* c_out = C + (hd * DH + a) * DH;
        for (int64_t b = 0; b < DH; ++b) {
          c_out[b] = f_s * c_in[b] + ik * vh[b];
          hh[b] += qa * c_out[b];
        }
      }
      const T den = std::max(std::abs(qn), std::exp(-std::max(m_new, floor))) + T(eps[2]);
      for (int64_t b = 0; b < DH; ++b) hh[b] /= den;
    }
    T* hnr = hn.data() + r * I;
    const T* xcr = xc.data() + r * I;
    group_norm<T>(h.data(), NH, DH, p[M_OUTNORM_W], p[M_OUTNORM_B], eps[1], hnr);
    const T* skip = p[M_SKIP].const_data_ptr<T>();
    for (int64_t j = 0; j < I; ++j) hnr[j] = (hnr[j] + skip[j] * xcr[j]) * silu(z[j]);
  }
  dense<T>(hn.data(), B, p[M_DOWN_W], p[M_DOWN_B], y.data());
  for (int64_t e = 0; e < B * E; ++e) x[e] += y[e];
  return true;
}

// The sLSTM block on x (B, E), in place; its new state into out[0..4]. False when the slow path would refuse.
template <typename T>
bool slstm_block(T* x, int64_t B, int64_t E, const Tensor* p, const Tensor* in, Tensor* out, int64_t NH,
                 const double* eps, int64_t act) {
  const int64_t DH = E / NH, F = p[S_DOWN_W].size(1);
  const bool has_conv = p[S_CONV_W].numel() > 0;
  const int64_t K = has_conv ? p[S_CONV_W].size(1) : 1;
  std::vector<T> xn(B * E), xc(E), gates(4 * E), hn(E), up(B * 2 * F), a(B * F), y(B * E);
  const T* R = p[S_R].const_data_ptr<T>();
  const T* bias = p[S_BIAS].const_data_ptr<T>();
  for (int64_t r = 0; r < B; ++r) {
    group_norm<T>(x + r * E, 1, E, p[S_NORM_W], p[S_NORM_B], eps[0], xn.data());  // row r's, in row 0's place
    if (has_conv) {
      conv_step<T>(xn.data(), in[0].const_data_ptr<T>() + r * (K - 1) * E, p[S_CONV_W], p[S_CONV_B], E, xc.data(),
                   out[0].mutable_data_ptr<T>() + r * (K - 1) * E);
      for (int64_t j = 0; j < E; ++j) xc[j] = silu(xc[j]);
    } else {
      std::copy_n(xn.data(), E, xc.data());
    }
    headwise<T>(xc.data(), p[S_I_W], p[S_I_B], gates.data());
    headwise<T>(xc.data(), p[S_F_W], p[S_F_B], gates.data() + E);
    headwise<T>(xn.data(), p[S_Z_W], p[S_Z_B], gates.data() + 2 * E);
    headwise<T>(xn.data(), p[S_O_W], p[S_O_B], gates.data() + 3 * E);
    const T* h0 = in[1].const_data_ptr<T>() + r * E;
    const T* c0 = in[2].const_data_ptr<T>() + r * E;
    const T* n0 = in[3].const_data_ptr<T>() + r * E;
    const T* m0 = in[4].const_data_ptr<T>() + r * E;
    if (!finite(gates.data(), 4 * E) || !finite(h0, E) || !finite(c0, E) || !finite(n0, E) || !finite(m0, E))
      return false;
    // ĩ, f̃, z̃, õ = x̃ + R h + b, R (NH, 4, DH, DH) block-diagonal, gate-major
    for (int64_t hd = 0; hd < NH; ++hd)
      for (int64_t g = 0; g < 4; ++g)
        for (int64_t o = 0; o < DH; ++o) {
          const T* row = R + ((hd * 4 + g) * DH + o) * DH;
          T acc = 0;
          for (int64_t i = 0; i < DH; ++i) acc += row[i] * h0[hd * DH + i];
          gates[g * E + hd * DH + o] += acc + bias[g * E + hd * DH + o];
        }
    T* h = out[1].mutable_data_ptr<T>() + r * E;
    T* c = out[2].mutable_data_ptr<T>() + r * E;
    T* n = out[3].mutable_data_ptr<T>() + r * E;
    T* m = out[4].mutable_data_ptr<T>() + r * E;
    for (int64_t j = 0; j < E; ++j) {
      const T pre_i = gates[j], pre_f = gates[E + j], pre_z = gates[2 * E + j], pre_o = gates[3 * E + j];
      const T log_f = log_sigmoid(pre_f);
      const bool restart = n0[j] == 0;  // an empty memory restarts the stabilizer: m' = ĩ, f = 0
      const T m_new = restart ? pre_i : std::max(log_f + m0[j], pre_i);
      const T i_s = std::exp(pre_i - m_new), f_s = restart ? T(0) : std::exp(log_f + m0[j] - m_new);
      c[j] = f_s * c0[j] + i_s * std::tanh(pre_z);
      n[j] = f_s * n0[j] + i_s;
      h[j] = sigmoid(pre_o) * c[j] / n[j];
      m[j] = m_new;
    }
    group_norm<T>(h, NH, DH, p[S_OUTNORM_W], p[S_OUTNORM_B], eps[1], hn.data());
    for (int64_t e = 0; e < E; ++e) x[r * E + e] += hn[e];
  }
  // the feed-forward, its products over all rows at once
  for (int64_t r = 0; r < B; ++r)
    group_norm<T>(x + r * E, 1, E, p[S_FFN_NORM_W], p[S_FFN_NORM_B], eps[2], xn.data() + r * E);
  dense<T>(xn.data(), B, p[S_UP_W], p[S_UP_B], up.data());
  for (int64_t r = 0; r < B; ++r)
    for (int64_t j = 0; j < F; ++j) a[r * F + j] = activate(up[r * 2 * F + j], act) * up[r * 2 * F + F + j];
  dense<T>(a.data(), B, p[S_DOWN_W], p[S_DOWN_B], y.data());
  for (int64_t e = 0; e < B * E; ++e) x[e] += y[e];
  return true;
}

// Whether a state tensor is what the slow path accepts: this shape, the model's dtype (and on the CPU).
bool fits(const Tensor& t, at::IntArrayRef shape, at::ScalarType type) {
  return t.sizes() == shape && t.scalar_type() == type && t.is_cpu();
}

// Whether every block's state has the shapes of `check_state` (mLSTMLayer, sLSTMLayer): else the slow path raises.
bool states_fit(const std::string& blocks, const std::vector<Tensor>& p, const std::vector<Tensor>& in, int64_t B,
                int64_t E, int64_t mlstm_heads, at::ScalarType type) {
  size_t param = 0, state = 0;
  for (const char letter : blocks) {
    const Tensor* q = p.data() + param;
    const Tensor* s = in.data() + state;
    if (letter == 'm') {
      const int64_t I = q[M_SKIP].numel(), NH = mlstm_heads, DH = I / NH, K = q[M_CONV_W].size(1);
      if (!fits(s[0], {B, K - 1, I}, type) || !fits(s[1], {B, NH, DH, DH}, type) || !fits(s[2], {B, NH, DH}, type) ||
          !fits(s[3], {B, NH}, type))
        return false;
      param += M_PER, state += 4;
    } else {
      const bool has_conv = q[S_CONV_W].numel() > 0;
      if (has_conv ? !fits(s[0], {B, q[S_CONV_W].size(1) - 1, E}, type) : s[0].dim() != 1) return false;
      for (int j = 1; j < 5; ++j)
        if (!fits(s[j], {B, E}, type)) return false;
      param += S_PER, state += 5;
    }
  }
  return true;
}

template <typename T>
std::vector<Tensor> step_typed(const Tensor& tokens, const Tensor& embedding, const std::string& blocks,
                               const std::vector<Tensor>& p, const std::vector<Tensor>& state_in,
                               const std::vector<Tensor>& fin, at::ArrayRef<double> eps, int64_t mlstm_heads,
                               int64_t slstm_heads, int64_t act) {
  const int64_t B = tokens.size(0), E = embedding.size(1);
  if (!states_fit(blocks, p, state_in, B, E, mlstm_heads, embedding.scalar_type())) return {};
  std::vector<T> x(B * E);
  const int64_t* ids = tokens.const_data_ptr<int64_t>();
  const T* table = embedding.const_data_ptr<T>();
  for (int64_t r = 0; r < B; ++r) std::copy_n(table + ids[r] * E, E, x.data() + r * E);
  std::vector<Tensor> result(1 + state_in.size());
  for (size_t s = 0; s < state_in.size(); ++s) result[1 + s] = at::empty(state_in[s].sizes(), state_in[s].options());
  size_t param = 0, state = 0;
  for (size_t l = 0; l < blocks.size(); ++l) {
    const bool ok =
        blocks[l] == 'm'
            ? mlstm_block<T>(x.data(), B, E, p.data() + param, state_in.data() + state, result.data() + 1 + state,
                             mlstm_heads, eps.data() + 3 * l)
            : slstm_block<T>(x.data(), B, E, p.data() + param, state_in.data() + state, result.data() + 1 + state,
                             slstm_heads, eps.data() + 3 * l, act);
    if (!ok) return {};
    param += blocks[l] == 'm' ? M_PER : S_PER;
    state += blocks[l] == 'm' ? 4 : 5;
  }
  std::vector<T> xn(B * E);
  if (fin[0].numel()) {
    for (int64_t r = 0; r < B; ++r)
      group_norm<T>(x.data() + r * E, 1, E, fin[0], fin[1], eps[3 * blocks.size()], xn.data() + r * E);
  } else {
    xn = x;
  }
  result[0] = at::empty({B, fin[2].size(0)}, embedding.options());
  dense<T>(xn.data(), B, fin[2], Tensor(), result[0].mutable_data_ptr<T>());
  return result;
}

std::vector<Tensor> step(const Tensor& tokens, const Tensor& embedding, const std::string& blocks,
                         at::TensorList params, at::TensorList state_in, at::TensorList final_params,
                         at::ArrayRef<double> eps, int64_t mlstm_heads, int64_t slstm_heads, int64_t activation) {
  TORCH_CHECK(tokens.dim() == 1 && tokens.scalar_type() == at::kLong, "tokens must be (B,) int64");
  TORCH_CHECK(eps.size() == 3 * blocks.size() + 1, "eps has ", eps.size(), " values, expected 3 per block and 1");
  std::vector<Tensor> p, in, fin;
  const auto type = embedding.scalar_type();
  // a part in another dtype or off the CPU: the slow path's to handle (it raises where its products cannot mix them)
  const auto model_s = [&](const Tensor& t) { return !t.numel() || (t.scalar_type() == type && t.is_cpu()); };
  for (const auto& t : params) {
    if (!model_s(t)) return {};
    p.push_back(t.contiguous());
  }
  for (const auto& t : final_params) {
    if (!model_s(t)) return {};
    fin.push_back(t.contiguous());
  }
  for (const auto& t : state_in) in.push_back(t.contiguous());
  const Tensor ids = tokens.contiguous(), table = embedding.contiguous();
  if (type == at::kFloat)
    return step_typed<float>(ids, table, blocks, p, in, fin, eps, mlstm_heads, slstm_heads, activation);
  TORCH_CHECK(type == at::kDouble, "dtype ", type, " is not supported, expected float32 or float64");
  return step_typed<double>(ids, table, blocks, p, in, fin, eps, mlstm_heads, slstm_heads, activation);
}

}  // namespace

TORCH_LIBRARY(lstmkit_lm_step, m) { m.def("step", &step); }
