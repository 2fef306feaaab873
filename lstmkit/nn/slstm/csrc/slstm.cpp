// The sLSTM time loops in C++, for lstmkit/nn/slstm/cpp_loop.py (which builds this file on first use and
// holds the equations in its docstring). A forward step is one ATen bmm for the recurrent product of all
// heads and gates, three vectorized ATen calls for the exponentials and logarithms of all elements, and
// plain loops over the elements for the rest; a backward step is one plain loop and one bmm. The Python
// loop it replaces issued ~30 small ATen kernels per step. Only light headers: <torch/extension.h>
// alone takes ~20 s to compile.
//
// B batch, T time, NH heads, DH head size, H = NH·DH, N = NH·B·DH elements per step, in (NH, B, DH)
// order; one head's gates [i | f | z | o] = 4·DH columns.
//   x, dx          (B, T, 4H)          gate-major, as the layer's input
//   out, d_out     (B, T, H)
//   Rcat           (NH, DH, 4·DH)      R[head, gate, out, in] as (head, in, gate·out)
//   h, c, n, m     (S, NH, B, DH)      the state entering step t in slot t % S (S = T + 1, or 2 when
//                                      nothing is saved for the backward); c, n, m as computed, h with
//                                      step t's reset applied, since h is what the bmm multiplies
//   gates          (6, T, NH, B, DH)   i, f, z, o, σ(-f̃), via_forget (1 where m_t = log σ(f̃) + m_{t-1})
//   reset, valid   (T, B) bool or empty; reset is already `reset & valid` (padding wins)
#include <ATen/core/Tensor.h>
#include <ATen/ops/bmm.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/log1p.h>
#include <c10/util/ParallelGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

// MKL (torch's BLAS on x86) opens an OpenMP region for every gemm, even a 4×32×128 one: ~5 µs a call on
// a quiet machine, milliseconds when the cores are busy. The loops pin it to this thread; weak, so that
// builds without MKL (OpenBLAS) link and skip it.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

namespace {

using at::Tensor;

struct SerialLoop {  // nested at::parallel_for and MKL run on the calling thread while this lives
  c10::ParallelGuard parallel_guard{true};
  int mkl_before = MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0;
  ~SerialLoop() {
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(mkl_before);  // 0: back to the global setting
  }
};

struct Sizes {
  int64_t B, T, NH, DH, S;
  int64_t H() const { return NH * DH; }
  int64_t N() const { return NH * B * DH; }
  int64_t slot(int64_t t) const { return (t % S) * N(); }
};

// Visits every element of a step as body(b, k, col): b its batch row, k its index in (NH, B, DH), col its
// column head·DH + j in a row of h (B, H), and of x̃ (B, 4H) for gate i (add q·H for gate q).
template <typename Body>
void each_element(const Sizes& s, Body&& body) {
  for (int64_t head = 0; head < s.NH; ++head)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t j = 0; j < s.DH; ++j) body(b, (head * s.B + b) * s.DH + j, head * s.DH + j);
}

bool flag(const bool* mask, int64_t t, int64_t b, int64_t B, bool absent) { return mask ? mask[t * B + b] : absent; }

template <typename scalar>
void forward_loop(const Sizes& s, const scalar* x, const scalar* bias, const Tensor& Rcat, const bool* reset,
                  const bool* valid, scalar* out, const Tensor& h_all, scalar* c, scalar* n, scalar* m, scalar* g) {
  const int64_t B = s.B, DH = s.DH, H = s.H(), N = s.N();
  scalar* h = h_all.data_ptr<scalar>();
  Tensor rh = at::empty({s.NH, B, 4 * DH}, h_all.options());  // R h_{t-1} for all heads and gates
  // per element: ĩ, f̃, then exp of (-|f̃|, 2z̃, -õ), log(1 + exp(-|f̃|)), exp(-|log σ(f̃) + m_{t-1} - ĩ|)
  Tensor work = at::empty({7, N}, h_all.options());
  Tensor exps = work.narrow(0, 2, 3), e_f = work[2], log1p_e = work[5], smaller = work[6];
  scalar *pre_i = work[0].data_ptr<scalar>(), *pre_f = work[1].data_ptr<scalar>(), *e = e_f.data_ptr<scalar>();
  scalar *e2z = work[3].data_ptr<scalar>(), *e_o = work[4].data_ptr<scalar>();
  scalar *l = log1p_e.data_ptr<scalar>(), *d = smaller.data_ptr<scalar>();
  for (int64_t t = 0; t < s.T; ++t) {
    const scalar *h_in = h + s.slot(t), *c_in = c + s.slot(t), *n_in = n + s.slot(t), *m_in = m + s.slot(t);
    scalar *h_nx = h + s.slot(t + 1), *c_nx = c + s.slot(t + 1), *n_nx = n + s.slot(t + 1), *m_nx = m + s.slot(t + 1);
    at::bmm_out(rh, h_all[t % s.S], Rcat);
    const scalar* rh_t = rh.data_ptr<scalar>();
    each_element(s, [&](int64_t b, int64_t k, int64_t xk) {  // ĩ, f̃, z̃, õ = x̃_t + R h_{t-1} + b
      const scalar* x_tb = x + (b * s.T + t) * 4 * H;
      const scalar* rh_k = rh_t + k / DH * 4 * DH + k % DH;
      pre_i[k] = x_tb[xk] + bias[xk] + rh_k[0];
      pre_f[k] = x_tb[H + xk] + bias[H + xk] + rh_k[DH];
      e[k] = -std::abs(pre_f[k]);
      e2z[k] = 2 * (x_tb[2 * H + xk] + bias[2 * H + xk] + rh_k[2 * DH]);
      e_o[k] = -(x_tb[3 * H + xk] + bias[3 * H + xk] + rh_k[3 * DH]);
    });
    at::exp_(exps);
    at::log1p_out(log1p_e, e_f);
    each_element(s, [&](int64_t b, int64_t k, int64_t) {  // log σ(f̃) + m_{t-1} against ĩ
      const scalar m_prev = flag(reset, t, b, B, false) ? 0 : m_in[k];
      l[k] = std::min(pre_f[k], scalar(0)) - l[k] + m_prev;  // log σ(f̃) = min(f̃, 0) - log(1 + exp(-|f̃|))
      d[k] = -std::abs(l[k] - pre_i[k]);
    });
    at::exp_(smaller);
    each_element(s, [&](int64_t b, int64_t k, int64_t col) {
      const bool r = flag(reset, t, b, B, false), v = flag(valid, t, b, B, true);
      const bool r_next = t + 1 < s.T && flag(reset, t + 1, b, B, false);
      scalar h_new = h_in[k], c_new = c_in[k], n_new = n_in[k], m_new = m_in[k];
      if (v) {  // a padded row keeps its state and repeats h_{t-1}; its gates are never read
        const scalar c_prev = r ? 0 : c_in[k], n_prev = r ? 0 : n_in[k], from_forget = l[k];
        // m_t = max(log σ(f̃) + m_{t-1}, ĩ): the larger of i, f is exp(0) = 1, so one exp gives both
        const bool restart = n_prev == 0;  // an empty memory restarts the stabilizer: m_t = ĩ, f = 0
        const bool via = !restart && from_forget > pre_i[k];
        m_new = via ? from_forget : pre_i[k];
        const scalar i = via ? d[k] : 1, f = restart ? 0 : via ? 1 : d[k];
        const scalar z = 1 - 2 / (1 + e2z[k]);  // tanh(z̃) = 1 - 2 / (1 + exp(2z̃))
        const scalar o = 1 / (1 + e_o[k]);      // σ(õ)
        c_new = f * c_prev + i * z;
        n_new = f * n_prev + i;
        h_new = o * c_new / n_new;
        if (g) {  // σ(-f̃) = exp(-|f̃|) / (1 + exp(-|f̃|)) for f̃ ≥ 0, 1 / (1 + exp(-|f̃|)) otherwise
          const scalar sig_neg_f = (pre_f[k] >= 0 ? e[k] : scalar(1)) / (1 + e[k]);
          const scalar saved[6] = {i, f, z, o, sig_neg_f, scalar(via)};
          for (int q = 0; q < 6; ++q) g[(q * s.T + t) * N + k] = saved[q];
        }
      }
      out[(b * s.T + t) * H + col] = h_new;
      h_nx[k] = r_next ? 0 : h_new;
      c_nx[k] = c_new, n_nx[k] = n_new, m_nx[k] = m_new;
    });
  }
}

template <typename scalar>
void backward_loop(const Sizes& s, const scalar* d_out, const Tensor& RcatT, const bool* reset, const bool* valid,
                   const scalar* c, const scalar* n, const scalar* g, scalar* dx, const Tensor& da_all,
                   Tensor& dh_all, scalar* dc, scalar* dn, scalar* dm) {
  const int64_t B = s.B, DH = s.DH, H = s.H(), N = s.N();
  scalar* da = da_all.data_ptr<scalar>();  // (NH, T, B, 4·DH)
  scalar* dh = dh_all.data_ptr<scalar>();  // (NH, B, DH), the gradient of h_t, then of h_{t-1}
  Tensor dh_kept = at::empty({N}, dh_all.options());  // dh_t for padded rows, which hand it to h_{t-1}
  scalar* kept = dh_kept.data_ptr<scalar>();
  for (int64_t t = s.T - 1; t >= 0; --t) {
    const scalar *c_prev_t = c + s.slot(t), *n_prev_t = n + s.slot(t);  // the state entering step t
    const scalar *c_t = c + s.slot(t + 1), *n_t = n + s.slot(t + 1);     // and leaving it
    const scalar* g_t[6];
    for (int q = 0; q < 6; ++q) g_t[q] = g + (q * s.T + t) * N;
    bool any_mask = false;
    each_element(s, [&](int64_t b, int64_t k, int64_t col) {
      const bool r = flag(reset, t, b, B, false), v = flag(valid, t, b, B, true);
      any_mask = any_mask || r || !v;
      const scalar dh_t = dh[k] + d_out[(b * s.T + t) * H + col];
      kept[k] = dh_t;
      scalar d[4] = {0, 0, 0, 0};  // dĩ, df̃, dz̃, dõ
      if (v) {
        const scalar i = g_t[0][k], f = g_t[1][k], z = g_t[2][k], o = g_t[3][k], sig_neg_f = g_t[4][k];
        const scalar c_prev = r ? 0 : c_prev_t[k], n_prev = r ? 0 : n_prev_t[k];
        const scalar c_over_n = c_t[k] / n_t[k];
        const scalar d_o = dh_t * c_over_n;
        const scalar d_c = dc[k] + dh_t * o / n_t[k];
        const scalar d_n = dn[k] - dh_t * o * c_over_n / n_t[k];
        const scalar d_f = d_c * c_prev + d_n * n_prev;
        const scalar d_pre_i = (d_c * z + d_n) * i;
        const scalar df_f = d_f * f;                 // the gradient of log f = log σ(f̃) + m_{t-1} - m_t
        const scalar d_m = dm[k] - d_pre_i - df_f;   // m_t enters i and f with a minus sign
        const scalar dm_route = g_t[5][k] != 0 ? d_m : 0;  // m_t = log σ(f̃) + m_{t-1}, else m_t = ĩ
        d[0] = d_pre_i + (d_m - dm_route);
        d[1] = (df_f + dm_route) * sig_neg_f;
        d[2] = d_c * i * (1 - z * z);
        d[3] = d_o * o * (1 - o);
        dc[k] = r ? 0 : d_c * f;  // a reset replaced the previous state by zeros
        dn[k] = r ? 0 : d_n * f;
        dm[k] = r ? 0 : df_f + dm_route;
      }
      scalar* da_k = da + ((k / (B * DH) * s.T + t) * B + b) * 4 * DH + k % DH;
      scalar* dx_k = dx + (b * s.T + t) * 4 * H + col;
      for (int q = 0; q < 4; ++q) da_k[q * DH] = d[q], dx_k[q * H] = d[q];
    });
    at::bmm_out(dh_all, da_all.select(1, t), RcatT);  // dh_{t-1} = R^T da_t, all heads at once
    if (!any_mask) continue;
    each_element(s, [&](int64_t b, int64_t k, int64_t) {
      const bool r = flag(reset, t, b, B, false), v = flag(valid, t, b, B, true);
      dh[k] = !v ? kept[k] : r ? 0 : dh[k];
    });
  }
}

const bool* mask_ptr(const Tensor& mask) { return mask.numel() ? mask.data_ptr<bool>() : nullptr; }

// Runs body(scalar{}) for float32 or float64 (the Python side sends nothing else).
template <typename Body>
void dispatch(const Tensor& like, Body&& body) {
  if (like.scalar_type() == at::kDouble) return body(double{});
  TORCH_CHECK(like.scalar_type() == at::kFloat, "lstmkit sLSTM C++ loop: float32 or float64, got ", like.scalar_type());
  body(float{});
}

// x (B, T, 4H), bias (4H), Rcat, h0..m0 (NH, B, DH), reset, valid (T, B) or empty
//   -> out (B, T, H), h, c, n, m (S, NH, B, DH), gates (6, T, NH, B, DH) (empty unless save)
std::vector<Tensor> forward(const Tensor& x_, const Tensor& bias_, const Tensor& Rcat_, const Tensor& h0,
                            const Tensor& c0, const Tensor& n0, const Tensor& m0, const Tensor& reset_,
                            const Tensor& valid_, bool save) {
  const Tensor x = x_.contiguous(), bias = bias_.contiguous(), Rcat = Rcat_.contiguous();
  const Tensor reset = reset_.contiguous(), valid = valid_.contiguous();
  const int64_t B = x.size(0), T = x.size(1), NH = Rcat.size(0), DH = Rcat.size(1);
  const Sizes s{B, T, NH, DH, save ? T + 1 : 2};
  Tensor out = at::empty({B, T, NH * DH}, x.options());
  Tensor gates = at::empty({save ? 6 * T * s.N() : 0}, x.options());
  std::vector<Tensor> state;
  for (const Tensor& s0 : {h0, c0, n0, m0}) {
    state.push_back(at::empty({s.S, NH, B, DH}, x.options()));
    state.back()[0].copy_(s0);
  }
  SerialLoop serial;  // per step the bmm and the exps are too small to gain from threads
  dispatch(x, [&](auto zero) {
    using scalar = decltype(zero);
    const bool* r = mask_ptr(reset);
    scalar* h = state[0].data_ptr<scalar>();
    each_element(s, [&](int64_t b, int64_t k, int64_t) {  // a reset at step 0: the bmm multiplies h = 0
      if (flag(r, 0, b, B, false)) h[k] = 0;
    });
    forward_loop<scalar>(s, x.data_ptr<scalar>(), bias.data_ptr<scalar>(), Rcat, r, mask_ptr(valid),
                         out.data_ptr<scalar>(), state[0], state[1].data_ptr<scalar>(), state[2].data_ptr<scalar>(),
                         state[3].data_ptr<scalar>(), save ? gates.data_ptr<scalar>() : nullptr);
  });
  return {out, state[0], state[1], state[2], state[3], gates};
}

// d_out (B, T, H), Rcat, h, c, n (T + 1, NH, B, DH), gates, reset, valid as saved by forward,
// dh_T..dm_T (NH, B, DH) -> dx (B, T, 4H), dRcat (NH, DH, 4·DH), dh_0..dm_0 (NH, B, DH)
std::vector<Tensor> backward(const Tensor& d_out_, const Tensor& Rcat, const Tensor& h, const Tensor& c,
                             const Tensor& n, const Tensor& gates, const Tensor& reset, const Tensor& valid,
                             const Tensor& dh_T, const Tensor& dc_T, const Tensor& dn_T, const Tensor& dm_T) {
  const Tensor d_out = d_out_.contiguous();
  const int64_t B = d_out.size(0), T = d_out.size(1), NH = Rcat.size(0), DH = Rcat.size(1);
  const Sizes s{B, T, NH, DH, T + 1};
  Tensor dx = at::empty({B, T, 4 * NH * DH}, d_out.options());
  Tensor da = at::empty({NH, T, B, 4 * DH}, d_out.options());
  Tensor dh = dh_T.clone(at::MemoryFormat::Contiguous), dc = dc_T.clone(at::MemoryFormat::Contiguous);
  Tensor dn = dn_T.clone(at::MemoryFormat::Contiguous), dm = dm_T.clone(at::MemoryFormat::Contiguous);
  {
    SerialLoop serial;  // as in forward; the dR product below may use threads
    dispatch(d_out, [&](auto zero) {
      using scalar = decltype(zero);
      backward_loop<scalar>(s, d_out.data_ptr<scalar>(), Rcat.transpose(1, 2), mask_ptr(reset), mask_ptr(valid),
                            c.data_ptr<scalar>(), n.data_ptr<scalar>(), gates.data_ptr<scalar>(),
                            dx.data_ptr<scalar>(), da, dh, dc.data_ptr<scalar>(), dn.data_ptr<scalar>(),
                            dm.data_ptr<scalar>());
    });
  }
  // dR for all steps in one product: dRcat[head] = Σ_t,b h_{t-1} ⊗ da_t
  Tensor h_prev = h.narrow(0, 0, T).permute({1, 0, 2, 3}).reshape({NH, T * B, DH});
  Tensor dRcat = at::bmm(h_prev.transpose(1, 2), da.view({NH, T * B, 4 * DH}));
  return {dx, dRcat, dh, dc, dn, dm};
}

}  // namespace

TORCH_LIBRARY(lstmkit_slstm, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
}
