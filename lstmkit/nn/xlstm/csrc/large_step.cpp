// One token through a whole xLSTMLarge in C++, for lstmkit/nn/xlstm/large_step.py (which builds this file on first
// use and holds the equations in its docstring). Decoding one token reads every weight once, so its floor is
// (bytes of weights) / (memory bandwidth); in Python it is also ~40 small operations per block, each costing more
// in dispatch than in arithmetic at small widths. Here: one call per token; every matrix-vector product streams
// its weight once (AVX-512 kernels for bfloat16 (vdpbf16ps) and float32 when the processor has them, ATen's mm
// otherwise); everything between them is plain loops over (batch row, feature) in float32 (double for double).
//
// B batch, E width, NH heads, DK = qk_dim / NH, DV = v_dim / NH, F SwiGLU width, V vocabulary, L blocks.
//   x (B, E) the token's embedding rows      params: PER tensors per block (see Param), empty where no bias
//   final: out norm weight, bias (both empty without an out norm), head weight (V, E)
//   state_in / state_out: C (B, NH, DK, DV), n (B, NH, DK), m (B, NH) per block; out may alias in (in place)
//   logits (B, V) written.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <c10/util/BFloat16.h>
#include <immintrin.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

using at::Tensor;

enum Param {
  NORM_W, NORM_B, Q_W, Q_B, K_W, K_B, V_W, V_B, O_W, O_B, I_W, I_B, F_W, F_B,
  OUTNORM_W, OUTNORM_B, OUT_W, OUT_B, FFN_NORM_W, FFN_NORM_B, UP_W, UP_B, DOWN_W, DOWN_B, PER
};

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

// The value the slow path would hold after storing v in T (round to nearest even for bfloat16).
template <typename T> typename Acc<T>::type rounded(typename Acc<T>::type v) { return static_cast<T>(v); }

bool has_bf16_kernel() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512bf16");
  return yes;
}

bool has_f32_kernel() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

// --- matrix-vector products: y (B, N) = x (B, K) W (N, K)ᵀ ------------------------------------------------------
// One weight row at a time, read front to back (a single sequential stream, which the prefetchers follow best),
// with a software prefetch PREFETCH bytes ahead and two accumulators per batch row; batch rows by BB share each
// load of W, so B rows cost one pass over the weights (for B ≤ BB; larger batches take ⌈B/BB⌉ passes).

constexpr int64_t PREFETCH = 2048;

template <int BB>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void bf16_row(const uint16_t* w, const uint16_t* x, float* y,
                                                                     int64_t K, int64_t N) {
  __m512 acc[BB][2];
  for (int j = 0; j < BB; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(w + k) + PREFETCH, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + k) + PREFETCH + 64, _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(w + k), w1 = _mm512_loadu_si512(w + k + 32);
    for (int j = 0; j < BB; ++j) {
      acc[j][0] = _mm512_dpbf16_ps(acc[j][0], (__m512bh)w0, (__m512bh)_mm512_loadu_si512(x + j * K + k));
      acc[j][1] = _mm512_dpbf16_ps(acc[j][1], (__m512bh)w1, (__m512bh)_mm512_loadu_si512(x + j * K + k + 32));
    }
  }
  for (; k < K; k += 32) {
    const __mmask32 mask = K - k >= 32 ? ~__mmask32(0) : (__mmask32)((1u << (K - k)) - 1);
    const __m512i w0 = _mm512_maskz_loadu_epi16(mask, w + k);
    for (int j = 0; j < BB; ++j)
      acc[j][0] = _mm512_dpbf16_ps(acc[j][0], (__m512bh)w0, (__m512bh)_mm512_maskz_loadu_epi16(mask, x + j * K + k));
  }
  for (int j = 0; j < BB; ++j) y[j * N] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]));
}

template <int BB>
__attribute__((target("avx512f"))) void f32_row(const float* w, const float* x, float* y, int64_t K, int64_t N) {
  __m512 acc[BB][2];
  for (int j = 0; j < BB; ++j) acc[j][0] = acc[j][1] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(w + k) + PREFETCH, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w + k) + PREFETCH + 64, _MM_HINT_T0);
    const __m512 w0 = _mm512_loadu_ps(w + k), w1 = _mm512_loadu_ps(w + k + 16);
    for (int j = 0; j < BB; ++j) {
      acc[j][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + j * K + k), acc[j][0]);
      acc[j][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + j * K + k + 16), acc[j][1]);
    }
  }
  for (; k < K; k += 16) {
    const __mmask16 mask = K - k >= 16 ? ~__mmask16(0) : (__mmask16)((1u << (K - k)) - 1);
    const __m512 w0 = _mm512_maskz_loadu_ps(mask, w + k);
    for (int j = 0; j < BB; ++j)
      acc[j][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(mask, x + j * K + k), acc[j][0]);
  }
  for (int j = 0; j < BB; ++j) y[j * N] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]));
}

constexpr int BB = 4;
constexpr int64_t GRAIN = int64_t(1) << 20;
// Weights per thread's task, at least (at::parallel_for's grain): only a product of more than GRAIN weights is split
// among threads. Each split is a fork and a join, and on a shared machine a join waits for the slowest thread:
// measured on 2 cores, splitting every product of more than 64k weights made a 124M model slower on 2 threads than
// on 1.

// Rows [r0, r1) of W against batch rows [b0, b0 + count), count ≤ BB.
template <typename E, template <int> class Row>
void rows(const E* W, const E* x, float* y, int64_t K, int64_t N, int64_t r0, int64_t r1, int64_t b0, int64_t count) {
  for (int64_t r = r0; r < r1; ++r) {
    const E* w = W + r * K;
    const E* xs = x + b0 * K;
    float* out = y + b0 * N + r;
    switch (count) {
      case 4: Row<4>::run(w, xs, out, K, N); break;
      case 3: Row<3>::run(w, xs, out, K, N); break;
      case 2: Row<2>::run(w, xs, out, K, N); break;
      default: Row<1>::run(w, xs, out, K, N); break;
    }
  }
}

template <int B_> struct Bf16Row {
  static void run(const uint16_t* w, const uint16_t* x, float* y, int64_t K, int64_t N) { bf16_row<B_>(w, x, y, K, N); }
};
template <int B_> struct F32Row {
  static void run(const float* w, const float* x, float* y, int64_t K, int64_t N) { f32_row<B_>(w, x, y, K, N); }
};

// y (B, N) acc = x (B, K, in T) W (N, K)ᵀ + bias, W and bias in T.
template <typename T>
void gemv(const Tensor& W, const Tensor& bias, const T* x, int64_t B, typename Acc<T>::type* y) {
  using A = typename Acc<T>::type;
  const int64_t N = W.size(0), K = W.size(1);
  constexpr bool bf16 = std::is_same_v<T, c10::BFloat16>, f32 = std::is_same_v<T, float>;
  if ((bf16 && has_bf16_kernel()) || (f32 && has_f32_kernel())) {
    const int64_t grain = std::max<int64_t>(1, GRAIN / std::max<int64_t>(K, 1));
    at::parallel_for(0, N, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t b0 = 0; b0 < B; b0 += BB) {
        const int64_t count = std::min<int64_t>(BB, B - b0);
        if constexpr (bf16) {
          rows<uint16_t, Bf16Row>(reinterpret_cast<const uint16_t*>(W.const_data_ptr<T>()),
                                  reinterpret_cast<const uint16_t*>(x), (float*)y, K, N, r0, r1, b0, count);
        } else if constexpr (f32) {
          rows<float, F32Row>(W.const_data_ptr<float>(), x, (float*)y, K, N, r0, r1, b0, count);
        }
      }
    });
  } else {
    const Tensor xt = at::from_blob(const_cast<T*>(x), {B, K}, W.options());
    const Tensor out = at::mm(xt, W.t()).contiguous();
    const T* o = out.const_data_ptr<T>();
    for (int64_t i = 0; i < B * N; ++i) y[i] = static_cast<A>(o[i]);
  }
  if (bias.defined() && bias.numel()) {
    const T* bv = bias.const_data_ptr<T>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n) y[b * N + n] += static_cast<A>(bv[n]);
  }
  if constexpr (!std::is_same_v<T, A>)  // the slow path's product is stored in T
    for (int64_t i = 0; i < B * N; ++i) y[i] = rounded<T>(y[i]);
}

// y (B, width) acc, columns [offset_m, offset_m + N_m) = x (B, K) W_mᵀ + bias_m for each m: the layer input's six
// products (q, k, v, o, ĩ, f̃; the same K) as one task over all their rows, so one fork and one join per layer instead
// of six, and products under GRAIN weights (q, k of a 356M model) no longer run on one thread while the others wait.
// Each row is the same kernel call on the same batch groups as in `gemv`, so the numbers are `gemv`'s.
template <typename T>
void gemv_gathered(const std::vector<const Tensor*>& Ws, const std::vector<const Tensor*>& biases, const T* x,
                   int64_t B, typename Acc<T>::type* y, int64_t width) {
  using A = typename Acc<T>::type;
  constexpr bool bf16 = std::is_same_v<T, c10::BFloat16>, f32 = std::is_same_v<T, float>;
  if (!((bf16 && has_bf16_kernel()) || (f32 && has_f32_kernel()))) {  // ATen's mm, one product at a time
    std::vector<A> part;
    int64_t offset = 0;
    for (size_t m = 0; m < Ws.size(); ++m) {
      const int64_t N = Ws[m]->size(0);
      part.resize(B * N);
      gemv<T>(*Ws[m], *biases[m], x, B, part.data());
      for (int64_t b = 0; b < B; ++b) std::copy_n(part.data() + b * N, N, y + b * width + offset);
      offset += N;
    }
    return;
  }
  if constexpr (bf16 || f32) {
    using E = std::conditional_t<bf16, uint16_t, float>;
    const int64_t K = Ws[0]->size(1);
    std::vector<int64_t> starts{0};  // starts[m]: the first gathered row (= column of y) of product m
    for (const Tensor* W : Ws) {
      TORCH_CHECK(W->size(1) == K, "gathered products have widths ", W->size(1), " and ", K, ", expected one");
      starts.push_back(starts.back() + W->size(0));
    }
    TORCH_CHECK(starts.back() == width, "gathered products have ", starts.back(), " rows, expected ", width);
    const int64_t grain = std::max<int64_t>(1, GRAIN / std::max<int64_t>(K, 1));
    const E* xe = reinterpret_cast<const E*>(x);
    at::parallel_for(0, width, grain, [&](int64_t r0, int64_t r1) {
      for (size_t m = 0; m < Ws.size(); ++m) {
        const int64_t lo = std::max(r0, starts[m]), hi = std::min(r1, starts[m + 1]);
        if (lo >= hi) continue;
        const E* W = reinterpret_cast<const E*>(Ws[m]->const_data_ptr<T>());
        for (int64_t b0 = 0; b0 < B; b0 += BB) {
          const int64_t count = std::min<int64_t>(BB, B - b0);
          // rows [lo, hi) of product m; output row stride width, so y's base moves to the product's columns
          if constexpr (bf16) {
            rows<uint16_t, Bf16Row>(W, xe, (float*)y + starts[m], K, width, lo - starts[m], hi - starts[m], b0, count);
          } else {
            rows<float, F32Row>(W, xe, (float*)y + starts[m], K, width, lo - starts[m], hi - starts[m], b0, count);
          }
        }
      }
    });
    for (size_t m = 0; m < Ws.size(); ++m) {
      const Tensor& bias = *biases[m];
      const int64_t N = Ws[m]->size(0);
      for (int64_t b = 0; b < B; ++b) {
        A* yb = y + b * width + starts[m];
        if (bias.defined() && bias.numel()) {
          const T* bv = bias.const_data_ptr<T>();
          for (int64_t n = 0; n < N; ++n) yb[n] += static_cast<A>(bv[n]);
        }
        if constexpr (!std::is_same_v<T, A>)
          for (int64_t n = 0; n < N; ++n) yb[n] = rounded<T>(yb[n]);
      }
    }
  }
}

// --- the parts between the products --------------------------------------------------------------------------

template <typename T>
void rms_norm(const typename Acc<T>::type* x, const Tensor& w, const Tensor& bias, double eps, int64_t B, int64_t E,
              T* out) {
  using A = typename Acc<T>::type;
  const T* wv = w.const_data_ptr<T>();
  const T* bv = bias.defined() && bias.numel() ? bias.const_data_ptr<T>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    const A* row = x + b * E;
    A ss = 0;
    for (int64_t e = 0; e < E; ++e) ss += row[e] * row[e];
    const A scale = A(1) / std::sqrt(ss / A(E) + A(eps));
    for (int64_t e = 0; e < E; ++e) {
      A v = row[e] * scale * static_cast<A>(wv[e]);
      if (bv) v += static_cast<A>(bv[e]);
      out[b * E + e] = static_cast<T>(v);
    }
  }
}

template <typename A>
A soft_cap(A v, double cap) {
  return cap > 0 ? A(cap) * std::tanh(v / A(cap)) : v;
}

template <typename A>
A log_sigmoid(A v) {
  return v < 0 ? v - std::log1p(std::exp(v)) : -std::log1p(std::exp(-v));
}

// One row a of a head's memory: C'[a, :] = f C[a, :] + (i k_a) v, num += q̂_a C'[a, :], stored as C'[a, :] · shift.
// In and out may be the same row (in place): each element is read before it is written.
template <typename T>
void memory_row_scalar(const T* c_in, T* c_out, const typename Acc<T>::type* v, typename Acc<T>::type f_s,
                       typename Acc<T>::type ka, typename Acc<T>::type qa, typename Acc<T>::type shift,
                       typename Acc<T>::type* num, int64_t from, int64_t DV) {
  using A = typename Acc<T>::type;
  for (int64_t c = from; c < DV; ++c) {
    const A value = f_s * static_cast<A>(c_in[c]) + ka * v[c];
    num[c] += qa * value;
    c_out[c] = static_cast<T>(value * shift);
  }
}

// The same for bfloat16, 16 columns at a time (the scalar conversions to and from bfloat16 do not vectorize, and
// this loop touches the whole state: at E = 1024 as many operations as a block's products have bytes).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void memory_row_bf16(const c10::BFloat16* c_in,
                                                                           c10::BFloat16* c_out, const float* v,
                                                                           float f_s, float ka, float qa, float shift,
                                                                           float* num, int64_t DV) {
  const __m512 fs = _mm512_set1_ps(f_s), kv = _mm512_set1_ps(ka), qv = _mm512_set1_ps(qa), sh = _mm512_set1_ps(shift);
  int64_t c = 0;
  for (; c + 16 <= DV; c += 16) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c_in + c));
    const __m512 old = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));  // exact
    const __m512 value = _mm512_fmadd_ps(fs, old, _mm512_mul_ps(kv, _mm512_loadu_ps(v + c)));
    _mm512_storeu_ps(num + c, _mm512_fmadd_ps(qv, value, _mm512_loadu_ps(num + c)));
    const __m256bh stored = _mm512_cvtneps_pbh(_mm512_mul_ps(value, sh));  // round to nearest even, as c10
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c_out + c), (__m256i)stored);
  }
  memory_row_scalar<c10::BFloat16>(c_in, c_out, v, f_s, ka, qa, shift, num, c, DV);
}

template <typename T>
void memory_row(const T* c_in, T* c_out, const typename Acc<T>::type* v, typename Acc<T>::type f_s,
                typename Acc<T>::type ka, typename Acc<T>::type qa, typename Acc<T>::type shift,
                typename Acc<T>::type* num, int64_t DV) {
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (has_bf16_kernel()) return memory_row_bf16(c_in, c_out, v, f_s, ka, qa, shift, num, DV);
  }
  memory_row_scalar<T>(c_in, c_out, v, f_s, ka, qa, shift, num, 0, DV);
}

// The mLSTM step of one block, every (batch row, head); qkvoif (B, W) = [q | k | v | o | ĩ | f̃] after the
// products; h (B, NH·DV) out. C, n, m in T; out may alias in. bfloat16 states are kept as `round_state` keeps them.
template <typename T>
void mlstm(const typename Acc<T>::type* qkvoif, int64_t width, int64_t B, int64_t NH, int64_t DK, int64_t DV,
           double gate_cap, double eps, const Tensor& C_in, const Tensor& n_in, const Tensor& m_in, Tensor& C_out,
           Tensor& n_out, Tensor& m_out, typename Acc<T>::type* h) {
  using A = typename Acc<T>::type;
  const A floor = A(1) - std::log(std::numeric_limits<A>::max());
  const A inf = std::numeric_limits<A>::infinity();
  const int64_t QK = NH * DK, VD = NH * DV;
  const T *C0 = C_in.const_data_ptr<T>(), *n0 = n_in.const_data_ptr<T>(), *m0 = m_in.const_data_ptr<T>();
  T *C1 = C_out.mutable_data_ptr<T>(), *n1 = n_out.mutable_data_ptr<T>(), *m1 = m_out.mutable_data_ptr<T>();
  const A q_scale = A(1) / std::sqrt(A(DK));
  std::vector<A> num(DV);
  for (int64_t b = 0; b < B; ++b) {
    const A* row = qkvoif + b * width;
    for (int64_t hd = 0; hd < NH; ++hd) {
      const A* q = row + hd * DK;
      const A* k = row + QK + hd * DK;
      const A* v = row + 2 * QK + hd * DV;
      const A i_gate = rounded<T>(soft_cap(row[2 * QK + 2 * VD + hd], gate_cap));
      const A f_gate = rounded<T>(soft_cap(row[2 * QK + 2 * VD + NH + hd], gate_cap));
      const int64_t s = b * NH + hd;
      const A m_prev = static_cast<A>(m0[s]);
      const A log_f = log_sigmoid(f_gate);
      const A m = std::max(log_f + m_prev, i_gate);
      const A f_s = std::exp(log_f + m_prev - m), i_s = std::exp(i_gate - m);
      // round_state: C and n absorb the rounding of m, so the memory e^m C is kept (identity in float32/64)
      A m_stored = m, shift = 1;
      if constexpr (!std::is_same_v<T, A>) {
        if (std::isfinite(m)) {
          m_stored = rounded<T>(m);
          shift = std::exp(m - m_stored);
        } else {
          m_stored = -inf;
        }
      }
      std::fill(num.begin(), num.end(), A(0));
      A qn = 0;
      for (int64_t a = 0; a < DK; ++a) {
        const A qa = q[a] * q_scale, ka = i_s * k[a];
        memory_row<T>(C0 + (s * DK + a) * DV, C1 + (s * DK + a) * DV, v, f_s, ka, qa, shift, num.data(), DV);
        const A n_a = f_s * static_cast<A>(n0[s * DK + a]) + ka;
        qn += qa * n_a;
        n1[s * DK + a] = static_cast<T>(n_a * shift);
      }
      m1[s] = static_cast<T>(m_stored);
      const A den = std::max(std::abs(qn), std::exp(-std::max(m, floor))) + A(eps);
      for (int64_t c = 0; c < DV; ++c) h[b * VD + hd * DV + c] = rounded<T>(num[c] / den);
    }
  }
}

// HeadNorm of h and the output gate: out = σ(o) ⊙ (LayerNorm per head (h) · w + b), in T.
template <typename T>
void gated_head_norm(const typename Acc<T>::type* h, const typename Acc<T>::type* qkvoif, int64_t width,
                     int64_t offset_o, const Tensor& w, const Tensor& bias, double eps, int64_t B, int64_t NH,
                     int64_t DV, T* out) {
  using A = typename Acc<T>::type;
  const T* wv = w.const_data_ptr<T>();
  const T* bv = bias.defined() && bias.numel() ? bias.const_data_ptr<T>() : nullptr;
  const int64_t VD = NH * DV;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t hd = 0; hd < NH; ++hd) {
      const A* x = h + b * VD + hd * DV;
      A mean = 0, var = 0;
      for (int64_t c = 0; c < DV; ++c) mean += x[c];
      mean /= A(DV);
      for (int64_t c = 0; c < DV; ++c) var += (x[c] - mean) * (x[c] - mean);
      const A inv = A(1) / std::sqrt(var / A(DV) + A(eps));
      for (int64_t c = 0; c < DV; ++c) {
        const int64_t e = hd * DV + c;
        const A normed = rounded<T>((x[c] - mean) * inv);
        const A scaled = rounded<T>(bv ? static_cast<A>(bv[e]) + normed * static_cast<A>(wv[e])
                                       : normed * static_cast<A>(wv[e]));
        const A gate = rounded<T>(A(1) / (A(1) + std::exp(-qkvoif[b * width + offset_o + e])));
        out[b * VD + e] = static_cast<T>(gate * scaled);
      }
    }
}

template <typename T>
void add_residual(typename Acc<T>::type* x, const typename Acc<T>::type* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) x[i] = rounded<T>(x[i] + y[i]);
}

template <typename T>
void step_typed(const Tensor& x0, const std::vector<Tensor>& p, const std::vector<Tensor>& fin,
                const std::vector<Tensor>& state_in, std::vector<Tensor>& state_out, Tensor& logits,
                int64_t NH, double norm_eps, double eps, double gate_cap, double logit_cap) {
  using A = typename Acc<T>::type;
  const int64_t L = int64_t(p.size()) / PER, B = x0.size(0), E = x0.size(1);
  const int64_t QK = p[Q_W].size(0), VD = p[V_W].size(0), F = p[DOWN_W].size(1), V = fin[2].size(0);
  const int64_t DK = QK / NH, DV = VD / NH, width = 2 * QK + 2 * VD + 2 * NH;
  std::vector<A> x(B * E), y(B * std::max({width, 2 * F, E})), h(B * VD);
  std::vector<T> in(B * std::max({E, VD, F}));
  const T* xs = x0.const_data_ptr<T>();
  for (int64_t i = 0; i < B * E; ++i) x[i] = static_cast<A>(xs[i]);
  for (int64_t l = 0; l < L; ++l) {
    const Tensor* q = p.data() + l * PER;
    rms_norm<T>(x.data(), q[NORM_W], q[NORM_B], norm_eps, B, E, in.data());
    // the six products of the layer's input, gathered into y (B, width) = [q | k | v | o | ĩ | f̃]
    gemv_gathered<T>({&q[Q_W], &q[K_W], &q[V_W], &q[O_W], &q[I_W], &q[F_W]},
                     {&q[Q_W + 1], &q[K_W + 1], &q[V_W + 1], &q[O_W + 1], &q[I_W + 1], &q[F_W + 1]}, in.data(), B,
                     y.data(), width);
    mlstm<T>(y.data(), width, B, NH, DK, DV, gate_cap, eps, state_in[3 * l], state_in[3 * l + 1], state_in[3 * l + 2],
             state_out[3 * l], state_out[3 * l + 1], state_out[3 * l + 2], h.data());
    gated_head_norm<T>(h.data(), y.data(), width, 2 * QK + VD, q[OUTNORM_W], q[OUTNORM_B], norm_eps, B, NH, DV,
                       in.data());
    gemv<T>(q[OUT_W], q[OUT_B], in.data(), B, y.data());
    add_residual<T>(x.data(), y.data(), B * E);
    // SwiGLU: [g | u] = W_up x in one product, SiLU(g) ⊙ u, W_down
    rms_norm<T>(x.data(), q[FFN_NORM_W], q[FFN_NORM_B], norm_eps, B, E, in.data());
    gemv<T>(q[UP_W], q[UP_B], in.data(), B, y.data());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t f = 0; f < F; ++f) {
        const A g = y[b * 2 * F + f], u = y[b * 2 * F + F + f];
        in[b * F + f] = static_cast<T>(rounded<T>(g / (A(1) + std::exp(-g))) * u);
      }
    gemv<T>(q[DOWN_W], q[DOWN_B], in.data(), B, y.data());
    add_residual<T>(x.data(), y.data(), B * E);
  }
  if (fin[0].numel()) {
    rms_norm<T>(x.data(), fin[0], fin[1], norm_eps, B, E, in.data());
  } else {
    for (int64_t i = 0; i < B * E; ++i) in[i] = static_cast<T>(x[i]);
  }
  std::vector<A> out(B * V);
  gemv<T>(fin[2], Tensor(), in.data(), B, out.data());
  T* lg = logits.mutable_data_ptr<T>();
  for (int64_t i = 0; i < B * V; ++i) lg[i] = static_cast<T>(soft_cap(out[i], logit_cap));
}

void step(const Tensor& x, at::TensorList params, at::TensorList final_params, at::TensorList state_in,
          at::TensorList state_out, const Tensor& logits, int64_t num_heads, double norm_eps, double eps,
          double gate_cap, double logit_cap) {
  TORCH_CHECK(params.size() % PER == 0, "params has ", params.size(), " tensors, expected ", int(PER), " per block");
  TORCH_CHECK(x.is_contiguous() && logits.is_contiguous(), "x and logits must be contiguous");
  std::vector<Tensor> p, fin, in, out;
  for (const auto& t : params) p.push_back(t.defined() ? t.contiguous() : Tensor());
  for (const auto& t : final_params) fin.push_back(t.contiguous());
  for (const auto& t : state_in) in.push_back(t.contiguous());
  for (const auto& t : state_out) {
    TORCH_CHECK(t.is_contiguous(), "state_out tensors must be contiguous");
    out.push_back(t);
  }
  Tensor lg = logits;
  const auto type = x.scalar_type();
  if (type == at::kBFloat16)
    step_typed<c10::BFloat16>(x, p, fin, in, out, lg, num_heads, norm_eps, eps, gate_cap, logit_cap);
  else if (type == at::kFloat)
    step_typed<float>(x, p, fin, in, out, lg, num_heads, norm_eps, eps, gate_cap, logit_cap);
  else if (type == at::kDouble)
    step_typed<double>(x, p, fin, in, out, lg, num_heads, norm_eps, eps, gate_cap, logit_cap);
  else
    TORCH_CHECK(false, "dtype ", type, " is not supported, expected bfloat16, float32 or float64");
}

// y (B, N) = x (B, K) Wᵀ in W's dtype through `gemv` (the kernels alone, for tests and measurements).
Tensor matvec(const Tensor& x, const Tensor& W) {
  TORCH_CHECK(x.dim() == 2 && W.dim() == 2 && x.size(1) == W.size(1) && x.scalar_type() == W.scalar_type(),
              "matvec takes x (B, K) and W (N, K) of one dtype");
  const Tensor xc = x.contiguous(), Wc = W.contiguous();
  const int64_t B = x.size(0), N = W.size(0);
  Tensor out = at::empty({B, N}, x.options().dtype(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  const auto type = x.scalar_type();
  if (type == at::kBFloat16)
    gemv<c10::BFloat16>(Wc, Tensor(), xc.const_data_ptr<c10::BFloat16>(), B, out.mutable_data_ptr<float>());
  else if (type == at::kFloat)
    gemv<float>(Wc, Tensor(), xc.const_data_ptr<float>(), B, out.mutable_data_ptr<float>());
  else if (type == at::kDouble)
    gemv<double>(Wc, Tensor(), xc.const_data_ptr<double>(), B, out.mutable_data_ptr<double>());
  else
    TORCH_CHECK(false, "dtype ", type, " is not supported, expected bfloat16, float32 or float64");
  return out;
}

bool kernel(const Tensor& like) {  // whether products in like's dtype use this file's AVX-512 kernels
  return (like.scalar_type() == at::kBFloat16 && has_bf16_kernel()) ||
         (like.scalar_type() == at::kFloat && has_f32_kernel());
}

}  // namespace

TORCH_LIBRARY(lstmkit_large_step, m) {
  m.def("step", &step);
  m.def("kernel", &kernel);
  m.def("matvec", &matvec);
}
