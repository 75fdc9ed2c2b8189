// Depthwise 2-D convolution (one filter per channel, NCHW, float32) for Paddle's CPU eager mode:
// forward, input gradient, weight and bias gradients. Paddle 3.3.1's own CPU kernel for it is
// slow (docs/benchmarks.md, "Session 9"). Here each (image, channel) plane is
// copied once into a zero-bordered buffer and the filter slides over it with 16-wide vectors:
// the "same" stride-1 convs the models use (3x3, 5x5, 7x7, ...) keep four output rows in
// registers, so every loaded input vector feeds up to four multiply-adds. Other geometries
// (strides, other paddings, rectangular filters) take a simpler row-by-row loop. Planes are
// spread over OpenMP threads.
//
// Same function as F.conv2d(x, w, b, stride, padding, groups=C) with dilation 1 and zero
// padding; the Python side (ppvision_hybrid/layers/depthwise.py) checks those conditions.
#include <algorithm>
#include <cstring>
#include <vector>

#include "paddle/extension.h"
#include "vector_math.h"

namespace {

using ppvh::kLanes;
using ppvh::lane_sum;
using ppvh::load;
using ppvh::splat;
using ppvh::v16;
constexpr int kRows = 4;  // output rows per register block

struct Geometry {
  int64_t n, c, h, w, kh, kw, oh, ow;
  int sh, sw, ph, pw;
  // For each filter column kx: the output columns [lo, hi) whose input column
  // ox * sw - pw + kx lies inside [0, w) (computed once: divisions are slow in inner loops).
  std::vector<int64_t> lo, hi;
  // "Same" stride-1 geometry with an odd square filter: the vectorised path.
  bool same() const { return sh == 1 && sw == 1 && kh == kw && kh % 2 == 1 && ph == kh / 2 && pw == kw / 2; }
  // Zero-bordered plane buffer for the vectorised path: rows of `stride` floats (room for a
  // full vector load past the last column), h + 2 * ph rows.
  int64_t stride() const { return (w + 2 * pw + kLanes + kLanes - 1) / kLanes * kLanes; }
  int64_t padded_size() const { return (h + 2 * ph) * stride(); }
};

Geometry geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& wt, int sh, int sw, int ph,
                  int pw) {
  Geometry g{x[0], x[1], x[2], x[3], wt[2], wt[3], 0, 0, sh, sw, ph, pw, {}, {}};
  g.oh = (g.h + 2 * ph - g.kh) / sh + 1;
  g.ow = (g.w + 2 * pw - g.kw) / sw + 1;
  for (int64_t kx = 0; kx < g.kw; ++kx) {
    const int64_t first = pw - kx;           // smallest valid ox * sw
    const int64_t last = g.w - 1 + pw - kx;  // largest valid ox * sw
    const int64_t lo = first <= 0 ? 0 : (first + sw - 1) / sw;
    const int64_t hi = last < 0 ? 0 : std::min<int64_t>(g.ow, last / sw + 1);
    g.lo.push_back(lo);
    g.hi.push_back(std::max(lo, hi));
  }
  return g;
}

// Copies an h x w plane into the zero-bordered buffer (ph rows / pw columns of zeros before).
void pad_plane(const Geometry& g, const float* __restrict src, float* __restrict dst) {
  const int64_t stride = g.stride();
  std::memset(dst, 0, sizeof(float) * g.padded_size());
  for (int64_t y = 0; y < g.h; ++y) std::memcpy(dst + (y + g.ph) * stride + g.pw, src + y * g.w, sizeof(float) * g.w);
}

// out = conv(padded plane, K x K filter) + bias, "same" stride 1 (out is h x w).
template <int K>
void same_conv_plane(const Geometry& g, const float* __restrict padded, const float* __restrict filter, float bias,
                     float* __restrict out) {
  const int64_t stride = g.stride(), rows_in = g.h + K - 1;
  v16 w[K * K];
  for (int i = 0; i < K * K; ++i) w[i] = splat(filter[i]);
  for (int64_t oy0 = 0; oy0 < g.h; oy0 += kRows) {
    const int rows = (int)std::min<int64_t>(kRows, g.h - oy0);
    for (int64_t ox0 = 0; ox0 < g.w; ox0 += kLanes) {
      v16 acc[kRows];
      for (int j = 0; j < kRows; ++j) acc[j] = splat(bias);
#pragma GCC unroll 16
      for (int r = 0; r < kRows + K - 1; ++r) {  // padded input row oy0 + r feeds output rows oy0 + r - ky
        if (oy0 + r >= rows_in) break;
        const float* s = padded + (oy0 + r) * stride + ox0;
#pragma GCC unroll 16
        for (int kx = 0; kx < K; ++kx) {
          const v16 x = load(s + kx);
#pragma GCC unroll 8
          for (int j = 0; j < kRows; ++j) {
            const int ky = r - j;
            if (ky >= 0 && ky < K) acc[j] += w[ky * K + kx] * x;
          }
        }
      }
      const int64_t n = std::min<int64_t>(kLanes, g.w - ox0);
      for (int j = 0; j < rows; ++j) {
        float* o = out + (oy0 + j) * g.w + ox0;
        if (n == kLanes) {
          std::memcpy(o, &acc[j], sizeof(v16));
        } else {
          float tail[kLanes];
          std::memcpy(tail, &acc[j], sizeof(v16));
          std::memcpy(o, tail, sizeof(float) * n);
        }
      }
    }
  }
}

// dL/dw (K x K taps, added to dw) and the sum of dy for one plane, "same" stride 1. `grad` is dy
// copied into rows of `stride` floats with zeros after column w, so whole vectors can be used.
template <int K>
void same_weight_grad_plane(const Geometry& g, const float* __restrict padded, const float* __restrict grad,
                            float* __restrict dw) {
  const int64_t stride = g.stride();
  for (int ky = 0; ky < K; ++ky) {
    v16 acc[K];
    for (int kx = 0; kx < K; ++kx) acc[kx] = v16{};
    for (int64_t oy = 0; oy < g.h; ++oy) {
      const float* s = padded + (oy + ky) * stride;
      const float* d = grad + oy * stride;
      for (int64_t ox0 = 0; ox0 < g.w; ox0 += kLanes) {
        const v16 gv = load(d + ox0);
#pragma GCC unroll 16
        for (int kx = 0; kx < K; ++kx) acc[kx] += gv * load(s + ox0 + kx);
      }
    }
    for (int kx = 0; kx < K; ++kx) dw[ky * K + kx] += lane_sum(acc[kx]);
  }
}

typedef void (*SameConv)(const Geometry&, const float*, const float*, float, float*);
typedef void (*SameWeightGrad)(const Geometry&, const float*, const float*, float*);

bool same_kernels(int64_t k, SameConv* conv, SameWeightGrad* weight_grad) {
  switch (k) {
#define PPVH_SAME(K)                           \
  case K:                                      \
    *conv = same_conv_plane<K>;                \
    *weight_grad = same_weight_grad_plane<K>;  \
    return true;
    PPVH_SAME(3)
    PPVH_SAME(5)
    PPVH_SAME(7)
    PPVH_SAME(9)
    PPVH_SAME(11)
#undef PPVH_SAME
    default:
      return false;
  }
}

// ---- any geometry: one filter tap at a time over an output row ---------------------------
void generic_forward_plane(const Geometry& g, const float* __restrict in, const float* __restrict wt, float bias,
                           float* __restrict out) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    float* __restrict row = out + oy * g.ow;
    std::fill(row, row + g.ow, bias);
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky;
      if (iy < 0 || iy >= g.h) continue;
      const float* __restrict src = in + iy * g.w;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float v = wt[ky * g.kw + kx];
        const int64_t lo = g.lo[kx], hi = g.hi[kx];
        if (g.sw == 1) {
          const float* __restrict s = src - g.pw + kx;
#pragma omp simd
          for (int64_t ox = lo; ox < hi; ++ox) row[ox] += v * s[ox];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) row[ox] += v * src[ox * g.sw - g.pw + kx];
        }
      }
    }
  }
}

void generic_input_grad_plane(const Geometry& g, const float* __restrict dy, const float* __restrict wt,
                              float* __restrict dx) {
  std::fill(dx, dx + g.h * g.w, 0.0f);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* __restrict grow = dy + oy * g.ow;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky;
      if (iy < 0 || iy >= g.h) continue;
      float* __restrict dst = dx + iy * g.w;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float v = wt[ky * g.kw + kx];
        const int64_t lo = g.lo[kx], hi = g.hi[kx];
        if (g.sw == 1) {
          float* __restrict d = dst - g.pw + kx;
#pragma omp simd
          for (int64_t ox = lo; ox < hi; ++ox) d[ox] += v * grow[ox];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) dst[ox * g.sw - g.pw + kx] += v * grow[ox];
        }
      }
    }
  }
}

void generic_weight_grad_plane(const Geometry& g, const float* __restrict in, const float* __restrict dy,
                               float* __restrict dw) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float* __restrict grow = dy + oy * g.ow;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky;
      if (iy < 0 || iy >= g.h) continue;
      const float* __restrict src = in + iy * g.w;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t lo = g.lo[kx], hi = g.hi[kx];
        float acc = 0.0f;
        if (g.sw == 1) {
          const float* __restrict s = src - g.pw + kx;
#pragma omp simd reduction(+ : acc)
          for (int64_t ox = lo; ox < hi; ++ox) acc += grow[ox] * s[ox];
        } else {
          for (int64_t ox = lo; ox < hi; ++ox) acc += grow[ox] * src[ox * g.sw - g.pw + kx];
        }
        dw[ky * g.kw + kx] += acc;
      }
    }
  }
}

float plane_sum(const float* __restrict p, int64_t size) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < size; ++i) s += p[i];
  return s;
}

void check_inputs(const paddle::Tensor& x, const paddle::Tensor& w) {
  PD_CHECK(x.is_cpu(), "ppvh_depthwise_conv2d runs on the CPU only");
  PD_CHECK(x.dtype() == paddle::DataType::FLOAT32 && w.dtype() == paddle::DataType::FLOAT32,
           "ppvh_depthwise_conv2d takes float32");
  PD_CHECK(x.shape().size() == 4 && w.shape().size() == 4 && w.shape()[1] == 1 && w.shape()[0] == x.shape()[1],
           "ppvh_depthwise_conv2d: x [N, C, H, W] and w [C, 1, kh, kw]");
}

}  // namespace

std::vector<paddle::Tensor> DepthwiseConvForward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                 const paddle::Tensor& b, int stride_h, int stride_w,
                                                 int pad_h, int pad_w, bool has_bias) {
  check_inputs(x, w);
  const Geometry g = geometry(x.shape(), w.shape(), stride_h, stride_w, pad_h, pad_w);
  auto out = paddle::empty({g.n, g.c, g.oh, g.ow}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  const float* wt = w.data<float>();
  const float* bias = has_bias ? b.data<float>() : nullptr;
  float* o = out.data<float>();
  const int64_t planes = g.n * g.c, taps = g.kh * g.kw;
  SameConv conv = nullptr;
  SameWeightGrad unused = nullptr;
  const bool fast = g.same() && same_kernels(g.kh, &conv, &unused);
#pragma omp parallel
  {
    std::vector<float> padded(fast ? g.padded_size() : 0);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t c = p % g.c;
      const float bias_c = bias ? bias[c] : 0.0f;
      if (fast) {
        pad_plane(g, in + p * g.h * g.w, padded.data());
        conv(g, padded.data(), wt + c * taps, bias_c, o + p * g.oh * g.ow);
      } else {
        generic_forward_plane(g, in + p * g.h * g.w, wt + c * taps, bias_c, o + p * g.oh * g.ow);
      }
    }
  }
  return {out};
}

std::vector<paddle::Tensor> DepthwiseConvBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                  const paddle::Tensor& b, const paddle::Tensor& dy,
                                                  int stride_h, int stride_w, int pad_h, int pad_w,
                                                  bool has_bias) {
  check_inputs(x, w);
  const Geometry g = geometry(x.shape(), w.shape(), stride_h, stride_w, pad_h, pad_w);
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto db = paddle::empty(b.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  const float* wt = w.data<float>();
  const float* grad = dy.data<float>();
  float* dxp = dx.data<float>();
  float* dwp = dw.data<float>();
  float* dbp = db.data<float>();
  const int64_t planes = g.n * g.c, taps = g.kh * g.kw, in_area = g.h * g.w, out_area = g.oh * g.ow;
  SameConv conv = nullptr;
  SameWeightGrad weight_grad = nullptr;
  const bool fast = g.same() && same_kernels(g.kh, &conv, &weight_grad);
  // "Same" stride 1: dL/dx is the same conv of dy with the filter turned by 180 degrees.
  std::vector<float> flipped(fast ? g.c * taps : 0);
  for (int64_t i = 0; fast && i < g.c * taps; ++i) flipped[i] = wt[(i / taps) * taps + taps - 1 - i % taps];
#pragma omp parallel
  {
    std::vector<float> padded(fast ? g.padded_size() : 0), grad_rows(fast ? g.h * g.stride() : 0);
#pragma omp for schedule(static) nowait
    for (int64_t p = 0; p < planes; ++p) {
      const int64_t c = p % g.c;
      if (fast) {
        pad_plane(g, grad + p * out_area, padded.data());
        conv(g, padded.data(), flipped.data() + c * taps, 0.0f, dxp + p * in_area);
      } else {
        generic_input_grad_plane(g, grad + p * out_area, wt + c * taps, dxp + p * in_area);
      }
    }
    // Weight and bias gradients: each thread owns whole channels (summed over the batch), so no
    // two threads write the same tap.
#pragma omp for schedule(static)
    for (int64_t c = 0; c < g.c; ++c) {
      float* dw_c = dwp + c * taps;
      std::fill(dw_c, dw_c + taps, 0.0f);
      float bias_sum = 0.0f;
      for (int64_t n = 0; n < g.n; ++n) {
        const int64_t p = n * g.c + c;
        bias_sum += plane_sum(grad + p * out_area, out_area);
        if (fast) {
          const int64_t stride = g.stride();
          pad_plane(g, in + p * in_area, padded.data());
          std::fill(grad_rows.begin(), grad_rows.end(), 0.0f);
          for (int64_t y = 0; y < g.h; ++y)
            std::memcpy(grad_rows.data() + y * stride, grad + p * out_area + y * g.w, sizeof(float) * g.w);
          weight_grad(g, padded.data(), grad_rows.data(), dw_c);
        } else {
          generic_weight_grad_plane(g, in + p * in_area, grad + p * out_area, dw_c);
        }
      }
      dbp[c % db.numel()] = has_bias ? bias_sum : 0.0f;
    }
  }
  return {dx, dw, db};
}

std::vector<std::vector<int64_t>> DepthwiseConvShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                     const std::vector<int64_t>& b, int stride_h, int stride_w,
                                                     int pad_h, int pad_w, bool has_bias) {
  const Geometry g = geometry(x, w, stride_h, stride_w, pad_h, pad_w);
  return {{g.n, g.c, g.oh, g.ow}};
}

std::vector<paddle::DataType> DepthwiseConvDtype(const paddle::DataType& x, const paddle::DataType& w,
                                                 const paddle::DataType& b) {
  return {x};
}

PD_BUILD_OP(ppvh_depthwise_conv2d)
    .Inputs({"X", "W", "B"})
    .Outputs({"Out"})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "has_bias: bool"})
    .SetKernelFn(PD_KERNEL(DepthwiseConvForward))
    .SetInferShapeFn(PD_INFER_SHAPE(DepthwiseConvShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(DepthwiseConvDtype));

PD_BUILD_GRAD_OP(ppvh_depthwise_conv2d)
    .Inputs({"X", "W", "B", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W"), paddle::Grad("B")})
    .Attrs({"stride_h: int", "stride_w: int", "pad_h: int", "pad_w: int", "has_bias: bool"})
    .SetKernelFn(PD_KERNEL(DepthwiseConvBackward));
