// Mamba's selective scan in C++, forward and backward, for lstmkit/nn/mamba/cpp_scan.py (which builds this file on
// first use and holds the equations in its docstring). Per (batch row b, channel d) the scan is independent:
//
//   h[n] = exp(Δ_t A[d, n]) h[n] + Δ_t x_t B_t[n]      y_t = (Σ_n h[n] C_t[n] + D x_t) SiLU(z_t)
//
// Work item = (b, a tile of W channels); at::parallel_for spreads the items over torch's threads. In an item the
// state is held as (N, W): the W channels are the vector lanes (one AVX-512 register of floats), B_t[n] and C_t[n]
// are broadcast, so every inner loop is a vertical vector loop of fixed width W. Nothing of size (B, T, D, N) is
// ever formed: the forward keeps the state entering every K-th step (checkpoints); the backward re-runs the K
// steps of a chunk from its checkpoint into a per-item scratch (the state entering each step and exp(Δ A)), then
// walks them in reverse. dA and dD are summed per item and then over b; dB and dC per item, then over the tiles.
//
// B batch, T time, D channels, N state size, W lanes (channels) per tile, K steps per checkpoint, NT tiles.
//   x, delta, z, y, dy  (B, T, D)       B, C (B, T, N)       A (D, N)       D (D) or empty, z empty when absent
//   h0, h, dh           (B, D, N)       checkpoints (B, ceil(T / K), D, N), the state entering step c·K
//   reset, valid        (B, T) bool or empty
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

// The loops are compiled three times, for AVX-512, for AVX2 + FMA and for the baseline, and the loader picks one for the CPU it runs on.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LANES_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LANES_CLONES
#endif

namespace {

using at::Tensor;
constexpr int64_t W = 16;

// exp(x) = 2^k e^r with k = round(x / ln 2) and |r| ≤ ln 2 / 2, e^r by its Taylor series (to r^7 in float, r^13 in
// double: below the type's rounding); plain arithmetic and bit moves, so that the compiler vectorizes the loops that
// call it (std::exp is a library call per element). Below lo the result is 0 (exp(lo) is at the bottom of the
// normal numbers), above hi +inf; 2^k is built as 2·2^(k-1) so that k = 128 (1024) stays representable.
inline float exp_lanes(float x) {
  constexpr float lo = -86.0f, hi = 88.7f, magic = 12582912.0f;  // 1.5·2^23: adding it rounds to an integer
  const float xc = x < lo ? lo : x > hi ? hi : x;
  float kf = xc * 1.44269504088896341f + magic;
  int32_t kbits;
  std::memcpy(&kbits, &kf, sizeof kbits);
  kf -= magic;
  const float r = (xc - kf * 0.693359375f) + kf * 2.12194440e-4f;
  float p = 1.0f / 5040;
  for (float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = p * r + c;
  const int32_t sbits = (kbits - 0x4B400000 + 126) << 23;
  float s;
  std::memcpy(&s, &sbits, sizeof s);
  const float e = 2 * p * s, low = x < lo ? 0.0f : e;  // every value computed: selects, no branches
  return x > hi ? std::numeric_limits<float>::infinity() : low;
}

inline double exp_lanes(double x) {
  constexpr double lo = -707.0, hi = 709.7, magic = 6755399441055744.0;  // 1.5·2^52
  const double xc = x < lo ? lo : x > hi ? hi : x;
  double kd = xc * 1.4426950408889634 + magic;
  int64_t kbits;
  std::memcpy(&kbits, &kd, sizeof kbits);
  kd -= magic;
  const double r = (xc - kd * 6.93147180369123816490e-01) - kd * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  for (double c : {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040, 1.0 / 720,
                   1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0})
    p = p * r + c;
  const int64_t sbits = (kbits - int64_t(0x4338000000000000) + 1022) << 52;
  double s;
  std::memcpy(&s, &sbits, sizeof s);
  const double e = 2 * p * s, low = x < lo ? 0.0 : e;
  return x > hi ? std::numeric_limits<double>::infinity() : low;
}

// Σ_j v[j] as a tree of vertical adds (v is overwritten), which vectorizes without reassociating floating point.
template <typename scalar>
scalar lane_sum(scalar* v) {
  for (int64_t width = W / 2; width > 0; width /= 2)
    for (int64_t j = 0; j < width; ++j) v[j] += v[j + width];
  return v[0];
}

template <typename scalar>
scalar sigmoid(scalar v) {
  return 1 / (1 + exp_lanes(-v));  // exp(-v) = inf gives 0, never NaN
}

template <typename scalar>
struct Scan {
  int64_t B, T, D, N, K, NT;
  const scalar *x, *delta, *A, *Bm, *Cm, *Dskip, *z;  // Dskip, z: nullptr when absent
  const bool *reset, *valid;                           // nullptr when absent
  bool flag(const bool* mask, int64_t b, int64_t t, bool absent) const { return mask ? mask[b * T + t] : absent; }
};

// One item's inputs at step t, channels d0 .. d0 + w in lanes 0 .. w (the lanes past w are 0).
template <typename scalar>
struct Lanes {
  scalar dt[W], x[W], dtx[W], gate[W], dgate[W], Dx[W];
  void load(const Scan<scalar>& s, int64_t b, int64_t t, int64_t d0, int64_t w) {
    const int64_t at = (b * s.T + t) * s.D + d0;
    for (int64_t j = 0; j < W; ++j) {
      dt[j] = j < w ? s.delta[at + j] : 0;
      x[j] = j < w ? s.x[at + j] : 0;
      dtx[j] = dt[j] * x[j];
      Dx[j] = s.Dskip && j < w ? s.Dskip[d0 + j] * x[j] : 0;
      const scalar zj = s.z && j < w ? s.z[at + j] : 0, sg = sigmoid(zj);
      gate[j] = s.z ? zj * sg : 1;                      // SiLU(z)
      dgate[j] = s.z ? sg * (1 + zj * (1 - sg)) : 0;    // SiLU'(z)
    }
  }
};

// One forward step of an item: h (N, W) in place, y0 = Σ_n h C + D x (W); with Keep, the state entering the step
// into carry and exp(Δ A) into e (the backward's recomputation). A reset multiplies the state by keep = 0, a padded
// step does not store: no branch in the lanes' loops, which the compiler vectorizes.
template <bool Keep, typename scalar>
LANES_CLONES void step(int64_t N, const scalar* __restrict At, const Lanes<scalar>& in, const scalar* __restrict Bt,
                       const scalar* __restrict Ct, bool r, bool v, scalar* __restrict h, scalar* __restrict y0,
                       scalar* __restrict carry, scalar* __restrict e) {
  const scalar keep = r ? 0 : 1;
  scalar acc[W] = {}, dt[W], dtx[W];
  for (int64_t j = 0; j < W; ++j) dt[j] = in.dt[j], dtx[j] = in.dtx[j];
  for (int64_t n = 0; n < N; ++n) {
    scalar hn[W];
    for (int64_t j = 0; j < W; ++j) {
      const int64_t k = n * W + j;
      const scalar a = exp_lanes(dt[j] * At[k]);
      hn[j] = a * (h[k] * keep) + dtx[j] * Bt[n];
      acc[j] += hn[j] * Ct[n];
      if constexpr (Keep) carry[k] = h[k], e[k] = a;
    }
    if (v)
      for (int64_t j = 0; j < W; ++j) h[n * W + j] = hn[j];
  }
  for (int64_t j = 0; j < W; ++j) y0[j] = acc[j] + in.Dx[j];
}

// A (D, N) -> At (N, W) for channels d0 .. d0 + w, 0 past w; state (D, N) rows <-> (N, W) lanes.
template <typename scalar>
void to_lanes(const scalar* rows, int64_t N, int64_t d0, int64_t w, scalar* lanes) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) lanes[n * W + j] = j < w ? rows[(d0 + j) * N + n] : 0;
}

template <typename scalar>
void from_lanes(const scalar* lanes, int64_t N, int64_t d0, int64_t w, scalar* rows) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < w; ++j) rows[(d0 + j) * N + n] = lanes[n * W + j];
}

template <typename scalar>
void forward_item(const Scan<scalar>& s, int64_t b, int64_t tile, const scalar* h0, scalar* y, scalar* h_T,
                  scalar* ckpt) {
  const int64_t d0 = tile * W, w = std::min(W, s.D - d0), N = s.N, chunks = (s.T + s.K - 1) / s.K;
  std::vector<scalar> At(N * W), h(N * W);
  to_lanes(s.A, N, d0, w, At.data());
  to_lanes(h0 + b * s.D * N, N, d0, w, h.data());
  Lanes<scalar> in;
  scalar y0[W];
  for (int64_t t = 0; t < s.T; ++t) {
    if (ckpt && t % s.K == 0) from_lanes(h.data(), N, d0, w, ckpt + ((b * chunks + t / s.K) * s.D) * N);
    in.load(s, b, t, d0, w);
    const int64_t bt = b * s.T + t;
    step<false>(N, At.data(), in, s.Bm + bt * N, s.Cm + bt * N, s.flag(s.reset, b, t, false),
                s.flag(s.valid, b, t, true), h.data(), y0, static_cast<scalar*>(nullptr), static_cast<scalar*>(nullptr));
    for (int64_t j = 0; j < w; ++j) y[bt * s.D + d0 + j] = y0[j] * in.gate[j];
  }
  from_lanes(h.data(), N, d0, w, h_T + b * s.D * N);
}

struct Grads {  // the backward's outputs, as raw pointers of the scan's scalar type (void* to stay untemplated)
  void *dx, *ddelta, *dz, *dh, *dA_b, *dD_b, *dB_t, *dC_t;  // dA_b (B, D, N), dD_b (B, D), dB_t, dC_t (NT, B, T, N)
};

// One reverse step of an item, with dh (N, W) the gradient of the state leaving step t, in place; branch-free as step.
template <typename scalar>
LANES_CLONES void step_back(int64_t N, const scalar* __restrict At, const Lanes<scalar>& in,
                            const scalar* __restrict Bt, const scalar* __restrict Ct, bool r, bool v,
                            const scalar* __restrict carry, const scalar* __restrict e,
                            const scalar* __restrict dy0, scalar* __restrict dh, scalar* __restrict dA,
                            scalar* __restrict dBt, scalar* __restrict dCt, scalar* __restrict ddtx,
                            scalar* __restrict dadt) {
  const scalar keep = r ? 0 : 1, through = v ? 1 : 0;  // a padded step hands dh past itself
  scalar dt[W], dtx[W], g[W], ddtx_[W] = {}, dadt_[W] = {};
  for (int64_t j = 0; j < W; ++j) dt[j] = in.dt[j], dtx[j] = in.dtx[j], g[j] = dy0[j];
  for (int64_t n = 0; n < N; ++n) {
    scalar dB[W], dC[W];  // summed over the lanes (channels) after the loop
    for (int64_t j = 0; j < W; ++j) {
      const int64_t k = n * W + j;
      const scalar h_prev = carry[k] * keep, old = dh[k];
      const scalar hn = e[k] * h_prev + dtx[j] * Bt[n];
      const scalar dhn = g[j] * Ct[n] + old * through;
      dC[j] = g[j] * hn;
      dB[j] = dhn * dtx[j];
      ddtx_[j] += dhn * Bt[n];
      const scalar da = dhn * h_prev * e[k];  // through Ā = exp(Δ A): d(Δ A) = dĀ · Ā
      dA[k] += da * dt[j];
      dadt_[j] += da * At[k];
      dh[k] = old * (1 - through) + dhn * e[k] * keep;
    }
    dBt[n] += lane_sum(dB), dCt[n] += lane_sum(dC);
  }
  for (int64_t j = 0; j < W; ++j) ddtx[j] = ddtx_[j], dadt[j] = dadt_[j];
}

template <typename scalar>
void backward_item(const Scan<scalar>& s, int64_t b, int64_t tile, const scalar* dy, const scalar* dh_T,
                   const scalar* ckpt, const Grads& g) {
  const int64_t d0 = tile * W, w = std::min(W, s.D - d0), N = s.N, K = s.K, chunks = (s.T + K - 1) / K;
  std::vector<scalar> At(N * W), h(N * W), dh(N * W), dA(N * W, 0), carry(K * N * W), e(K * N * W), y0(K * W);
  to_lanes(s.A, N, d0, w, At.data());
  to_lanes(dh_T + b * s.D * N, N, d0, w, dh.data());
  scalar* dx = static_cast<scalar*>(g.dx);
  scalar* ddelta = static_cast<scalar*>(g.ddelta);
  scalar* dz = static_cast<scalar*>(g.dz);
  scalar* dB_t = static_cast<scalar*>(g.dB_t) + (tile * s.B + b) * s.T * N;
  scalar* dC_t = static_cast<scalar*>(g.dC_t) + (tile * s.B + b) * s.T * N;
  scalar dD[W] = {};
  Lanes<scalar> in;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * K, t1 = std::min(s.T, t0 + K);
    to_lanes(ckpt + (b * chunks + c) * s.D * N, N, d0, w, h.data());
    for (int64_t t = t0; t < t1; ++t) {  // the chunk again from its checkpoint, keeping what the reverse needs
      in.load(s, b, t, d0, w);
      const int64_t bt = b * s.T + t, i = t - t0;
      step<true>(N, At.data(), in, s.Bm + bt * N, s.Cm + bt * N, s.flag(s.reset, b, t, false),
                 s.flag(s.valid, b, t, true), h.data(), y0.data() + i * W, carry.data() + i * N * W,
                 e.data() + i * N * W);
    }
    for (int64_t t = t1 - 1; t >= t0; --t) {
      in.load(s, b, t, d0, w);
      const int64_t bt = b * s.T + t, i = t - t0;
      scalar dy0[W], ddtx[W] = {}, dadt[W] = {};
      for (int64_t j = 0; j < W; ++j) {
        const scalar dy_j = j < w ? dy[bt * s.D + d0 + j] : 0;
        dy0[j] = dy_j * in.gate[j];  // the gradient of y before the gate
        if (dz && j < w) dz[bt * s.D + d0 + j] = dy_j * y0[i * W + j] * in.dgate[j];
      }
      step_back(N, At.data(), in, s.Bm + bt * N, s.Cm + bt * N, s.flag(s.reset, b, t, false),
                s.flag(s.valid, b, t, true), carry.data() + i * N * W, e.data() + i * N * W, dy0, dh.data(), dA.data(),
                dB_t + t * N, dC_t + t * N, ddtx, dadt);
      for (int64_t j = 0; j < w; ++j) {  // Δx enters as a product: d(Δx) splits into dx and dΔ
        const scalar Dj = s.Dskip ? s.Dskip[d0 + j] : 0;
        dx[bt * s.D + d0 + j] = ddtx[j] * in.dt[j] + dy0[j] * Dj;
        ddelta[bt * s.D + d0 + j] = ddtx[j] * in.x[j] + dadt[j];
        dD[j] += dy0[j] * in.x[j];
      }
    }
  }
  from_lanes(dh.data(), N, d0, w, static_cast<scalar*>(g.dh) + b * s.D * N);
  from_lanes(dA.data(), N, d0, w, static_cast<scalar*>(g.dA_b) + b * s.D * N);
  for (int64_t j = 0; j < w; ++j) static_cast<scalar*>(g.dD_b)[b * s.D + d0 + j] = dD[j];
}

const bool* mask_ptr(const Tensor& mask) { return mask.numel() ? mask.data_ptr<bool>() : nullptr; }

template <typename scalar>
Scan<scalar> scan_of(const Tensor& x, const Tensor& delta, const Tensor& A, const Tensor& Bm, const Tensor& Cm,
                     const Tensor& Dskip, const Tensor& z, const Tensor& reset, const Tensor& valid, int64_t K) {
  const int64_t D = x.size(2);
  return {x.size(0), x.size(1), D, A.size(1), K, (D + W - 1) / W,
          x.data_ptr<scalar>(), delta.data_ptr<scalar>(), A.data_ptr<scalar>(), Bm.data_ptr<scalar>(),
          Cm.data_ptr<scalar>(), Dskip.numel() ? Dskip.data_ptr<scalar>() : nullptr,
          z.numel() ? z.data_ptr<scalar>() : nullptr, mask_ptr(reset), mask_ptr(valid)};
}

// Runs body(scalar{}) for float32 or float64 (the Python side sends nothing else).
template <typename Body>
void dispatch(const Tensor& like, Body&& body) {
  if (like.scalar_type() == at::kDouble) return body(double{});
  TORCH_CHECK(like.scalar_type() == at::kFloat, "lstmkit selective scan: float32 or float64, got ", like.scalar_type());
  body(float{});
}

std::vector<Tensor> contiguous(std::initializer_list<Tensor> tensors) {
  std::vector<Tensor> out;
  for (const Tensor& t : tensors) out.push_back(t.contiguous());
  return out;
}

// -> y (B, T, D), h_T (B, D, N), checkpoints (B, ceil(T / K), D, N) (empty unless save)
std::vector<Tensor> forward(const Tensor& x_, const Tensor& delta_, const Tensor& A_, const Tensor& B_,
                            const Tensor& C_, const Tensor& D_, const Tensor& z_, const Tensor& h0_,
                            const Tensor& reset_, const Tensor& valid_, int64_t K, bool save) {
  auto in = contiguous({x_, delta_, A_, B_, C_, D_, z_, h0_, reset_, valid_});
  const Tensor &x = in[0], &h0 = in[7];
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), N = A_.size(1);
  Tensor y = at::empty({B, T, D}, x.options()), h_T = at::empty({B, D, N}, x.options());
  Tensor ckpt = at::empty({save ? B : 0, (T + K - 1) / K, D, N}, x.options());
  dispatch(x, [&](auto zero) {
    using scalar = decltype(zero);
    const Scan<scalar> s = scan_of<scalar>(x, in[1], in[2], in[3], in[4], in[5], in[6], in[8], in[9], K);
    scalar* ckpt_p = save ? ckpt.data_ptr<scalar>() : nullptr;
    at::parallel_for(0, B * s.NT, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item)
        forward_item(s, item % B, item / B, h0.data_ptr<scalar>(), y.data_ptr<scalar>(), h_T.data_ptr<scalar>(),
                     ckpt_p);
    });
  });
  return {y, h_T, ckpt};
}

// dy (B, T, D), dh_T (B, D, N), the forward's inputs and checkpoints
//   -> dx, ddelta, dA, dB, dC, dD (empty without D), dz (empty without z), dh0
std::vector<Tensor> backward(const Tensor& dy_, const Tensor& dh_T_, const Tensor& x_, const Tensor& delta_,
                             const Tensor& A_, const Tensor& B_, const Tensor& C_, const Tensor& D_, const Tensor& z_,
                             const Tensor& ckpt_, const Tensor& reset_, const Tensor& valid_, int64_t K) {
  auto in = contiguous({x_, delta_, A_, B_, C_, D_, z_, reset_, valid_, dy_, dh_T_, ckpt_});
  const Tensor &x = in[0], &dy = in[9], &dh_T = in[10], &ckpt = in[11];
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), N = A_.size(1), NT = (D + W - 1) / W;
  Tensor dx = at::empty_like(x), ddelta = at::empty_like(x), dz = at::empty({z_.dim() == 3 ? B : 0, T, D}, x.options());
  Tensor dh0 = at::empty({B, D, N}, x.options()), dA_b = at::empty({B, D, N}, x.options());
  Tensor dD_b = at::empty({B, D}, x.options());
  Tensor dB_t = at::zeros({NT, B, T, N}, x.options()), dC_t = at::zeros({NT, B, T, N}, x.options());
  dispatch(x, [&](auto zero) {
    using scalar = decltype(zero);
    const Scan<scalar> s = scan_of<scalar>(x, in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], K);
    const Grads g{dx.data_ptr(), ddelta.data_ptr(), z_.dim() == 3 ? dz.data_ptr() : nullptr, dh0.data_ptr(),
                  dA_b.data_ptr(), dD_b.data_ptr(), dB_t.data_ptr(), dC_t.data_ptr()};
    at::parallel_for(0, B * NT, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item)
        backward_item(s, item % B, item / B, dy.data_ptr<scalar>(), dh_T.data_ptr<scalar>(), ckpt.data_ptr<scalar>(),
                      g);
    });
  });
  Tensor dD = D_.numel() ? dD_b.sum(0) : at::empty({0}, x.options());
  return {dx, ddelta, dA_b.sum(0), dB_t.sum(0), dC_t.sum(0), dD, dz, dh0};
}

}  // namespace

TORCH_LIBRARY(lstmkit_selective_scan, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
}
