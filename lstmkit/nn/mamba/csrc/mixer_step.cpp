// One token through a Mamba mixer in C++, for lstmkit/nn/mamba/mixer_step.py (which builds this file on first use
// and holds the equations in its docstring). Generation calls the mixer once per token; in Python that is some
// 65 small operations, each costing more in dispatch than in arithmetic. Here: the four projections as ATen
// matrix products, everything between them as plain loops over (batch row, channel, state).
//
// B batch, E model width, I inner width, K conv taps, R Δ's rank, N state size.
//   u (B, E)   in_w (2I, E)   conv_w (I, K)   conv_state (B, K-1, I)   x_w (R+2N, I)   dt_w (I, R)   dt_b (I)
//   A_log (I, N)   D (I)   out_w (E, I)   h (B, I, N); in_b (2I), conv_b (I), out_b (E) may be empty
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <tuple>

namespace {

using at::Tensor;

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  return b.numel() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
}

template <typename T>
T silu(T v) {
  return v / (T(1) + std::exp(-v));
}

template <typename T>
T softplus(T v) {  // torch's: beta 1, threshold 20
  return v > T(20) ? v : std::log1p(std::exp(v));
}

// The convolution's step and SiLU: x_c (B, I) from the window [conv_state; x]; the new conv state (B, K-1, I).
template <typename T>
void conv_step(const T* xz, const T* w, const T* bias, const T* state, T* x_c, T* new_state, int64_t B, int64_t I,
               int64_t K) {
  for (int64_t b = 0; b < B; ++b) {
    const T* x = xz + b * 2 * I;
    const T* past = state + b * (K - 1) * I;
    T* next = new_state + b * (K - 1) * I;
    for (int64_t i = 0; i < I; ++i) {
      T acc = bias ? bias[i] : T(0);
      for (int64_t k = 0; k < K - 1; ++k) acc += w[i * K + k] * past[k * I + i];
      acc += w[i * K + K - 1] * x[i];
      x_c[b * I + i] = silu(acc);
      for (int64_t k = 0; k + 1 < K - 1; ++k) next[k * I + i] = past[(k + 1) * I + i];
      if (K > 1) next[(K - 2) * I + i] = x[i];
    }
  }
}

// The selective scan's step: h ← exp(Δ A) h + Δ x B, y = (h·C + D x) SiLU(z); delta holds W_dt δ + b_dt on entry.
template <typename T>
void scan_step(const T* xz, const T* x_c, const T* pre_delta, const T* dbc, const T* A_log, const T* D, const T* h,
               T* h_new, T* y, int64_t B, int64_t I, int64_t N, int64_t R) {
  for (int64_t b = 0; b < B; ++b) {
    const T* Bv = dbc + b * (R + 2 * N) + R;
    const T* Cv = Bv + N;
    for (int64_t i = 0; i < I; ++i) {
      const T delta = softplus(pre_delta[b * I + i]), x = x_c[b * I + i];
      const T* h_in = h + (b * I + i) * N;
      T* h_out = h_new + (b * I + i) * N;
      T acc = T(0);
      for (int64_t n = 0; n < N; ++n) {
        const T A = -std::exp(A_log[i * N + n]);
        h_out[n] = std::exp(delta * A) * h_in[n] + delta * x * Bv[n];
        acc += h_out[n] * Cv[n];
      }
      y[b * I + i] = (acc + D[i] * x) * silu(xz[b * 2 * I + I + i]);
    }
  }
}

template <typename T>
std::tuple<Tensor, Tensor, Tensor> step_typed(const Tensor& u, const Tensor& in_w, const Tensor& in_b,
                                             const Tensor& conv_w, const Tensor& conv_b, const Tensor& conv_state,
                                             const Tensor& x_w, const Tensor& dt_w, const Tensor& dt_b,
                                             const Tensor& A_log, const Tensor& D, const Tensor& out_w,
                                             const Tensor& out_b, const Tensor& h) {
  const int64_t B = u.size(0), I = conv_w.size(0), K = conv_w.size(1), N = A_log.size(1), R = dt_w.size(1);
  const Tensor xz = linear(u, in_w, in_b).contiguous();  // (B, 2I): [x | z]
  Tensor x_c = at::empty({B, I}, u.options());
  Tensor new_state = at::empty({B, K - 1, I}, u.options());
  conv_step<T>(xz.data_ptr<T>(), conv_w.data_ptr<T>(), conv_b.numel() ? conv_b.data_ptr<T>() : nullptr,
               conv_state.data_ptr<T>(), x_c.data_ptr<T>(), new_state.data_ptr<T>(), B, I, K);
  const Tensor dbc = at::mm(x_c, x_w.t()).contiguous();                           // (B, R + 2N): [δ | B | C]
  const Tensor pre_delta = at::addmm(dt_b, dbc.narrow(1, 0, R), dt_w.t()).contiguous();  // (B, I)
  Tensor h_new = at::empty({B, I, N}, u.options());
  Tensor y = at::empty({B, I}, u.options());
  scan_step<T>(xz.data_ptr<T>(), x_c.data_ptr<T>(), pre_delta.data_ptr<T>(), dbc.data_ptr<T>(), A_log.data_ptr<T>(),
               D.data_ptr<T>(), h.data_ptr<T>(), h_new.data_ptr<T>(), y.data_ptr<T>(), B, I, N, R);
  return {linear(y, out_w, out_b), new_state, h_new};
}

std::tuple<Tensor, Tensor, Tensor> step(const Tensor& u, const Tensor& in_w, const Tensor& in_b, const Tensor& conv_w,
                                        const Tensor& conv_b, const Tensor& conv_state, const Tensor& x_w,
                                        const Tensor& dt_w, const Tensor& dt_b, const Tensor& A_log, const Tensor& D,
                                        const Tensor& out_w, const Tensor& out_b, const Tensor& h) {
  const auto c = [](const Tensor& t) { return t.contiguous(); };
  if (u.scalar_type() == at::kDouble)
    return step_typed<double>(c(u), c(in_w), c(in_b), c(conv_w), c(conv_b), c(conv_state), c(x_w), c(dt_w), c(dt_b),
                              c(A_log), c(D), c(out_w), c(out_b), c(h));
  return step_typed<float>(c(u), c(in_w), c(in_b), c(conv_w), c(conv_b), c(conv_state), c(x_w), c(dt_w), c(dt_b),
                           c(A_log), c(D), c(out_w), c(out_b), c(h));
}

}  // namespace

TORCH_LIBRARY(lstmkit_mamba_step, m) { m.def("step", &step); }
