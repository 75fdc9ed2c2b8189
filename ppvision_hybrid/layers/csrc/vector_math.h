// 16-lane float vectors (GCC vector extensions: one AVX-512 or two AVX2 registers) and the
// vectorised exp / erfc the fast CPU kernels need.
#pragma once
#include <cstdint>
#include <cstring>

namespace ppvh {

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof(v)); }
inline v16 splat(float x) { return v16{} + x; }
inline v16 vmin(v16 a, v16 b) { return a < b ? a : b; }
inline v16 vmax(v16 a, v16 b) { return a > b ? a : b; }
inline v16 vabs(v16 x) { return x < 0.0f ? -x : x; }
inline float lane_sum(v16 v) {
  float s = 0.0f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// exp(x): x = k ln2 + r (Cody-Waite, two constants), a degree-6 polynomial for exp(r) on
// |r| <= ln2 / 2, times 2^k from the exponent bits; within 2 ulp of expf, inputs clamped to
// [-87, 88] (underflow gives ~1e-38, not 0).
inline v16 vexp(v16 x) {
  x = vmin(vmax(x, splat(-87.0f)), splat(88.0f));
  const v16 t = x * 1.44269504088896341f + 0.5f;
  v16 k = __builtin_convertvector(__builtin_convertvector(t, i16), v16);
  k = k > t ? k - 1.0f : k;  // floor(x / ln2 + 1/2)
  v16 r = x - k * 0.693359375f;
  r = r - k * -2.12194440e-4f;
  v16 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const i16 bits = (__builtin_convertvector(k, i16) + 127) << 23;
  v16 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// erfc(z) for z >= 0 with a relative error below 1.2e-7 everywhere (a Chebyshev fit of
// erfc(z) * exp(z^2); Press et al., Numerical Recipes, Sec. 6.2), so the tails stay accurate.
inline v16 erfc_nonnegative(v16 z) {
  const v16 t = 1.0f / (1.0f + 0.5f * z);
  v16 p = splat(0.17087277f);
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * vexp(p - z * z);
}

// The standard normal CDF Phi(x) = erfc(-x / sqrt(2)) / 2, from the tail on each side.
inline v16 normal_cdf(v16 x) {
  const v16 tail = 0.5f * erfc_nonnegative(vabs(x) * 0.70710678118654752f);
  return x < 0.0f ? tail : 1.0f - tail;
}

}  // namespace ppvh
