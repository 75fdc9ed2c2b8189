// Bicubic resize of the last two axes of a float32 [N, C, H, W] tensor (align_corners=False,
// Keys' cubic convolution with A = -0.75, borders clamped: what F.interpolate(mode="bicubic")
// computes in PyTorch), forward and backward, for Paddle's CPU eager mode.
//
// The same arithmetic, operation for operation, as layers/resample.py's standard-op form
// (index_select, multiply and add along H, then along W), so the forward results are bitwise
// equal: every product and sum is rounded separately (this file is built with
// -ffp-contract=off). That form writes eight full-size intermediates per resize; TransXNet
// resizes its relative position term [1, heads, N, Nk] to the attention size, which at 800x1333
// is [1, 1, 66800, 1050] per stage (docs/benchmarks.md, "Session 9", dense resolution).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "paddle/extension.h"

// Bitwise equality with the standard-op form needs every product and sum rounded on its own.
#pragma GCC optimize("fp-contract=off")

namespace {

// Source indices and weights of the 4 taps of each output position along one axis.
struct Taps {
  std::vector<int64_t> index;  // [out * 4]
  std::vector<float> weight;   // [out * 4]
};

Taps taps(int64_t in_size, int64_t out_size) {
  Taps t{std::vector<int64_t>(out_size * 4), std::vector<float>(out_size * 4)};
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  const float a = -0.75f;
  for (int64_t i = 0; i < out_size; ++i) {
    const float src = (static_cast<float>(i) + 0.5f) * scale - 0.5f;
    const float base = std::floor(src);
    const float x = src - base;
    const float x1 = x + 1.0f, x2 = 1.0f - x, x3 = 2.0f - x;
    const float w[4] = {((a * x1 - 5.0f * a) * x1 + 8.0f * a) * x1 - 4.0f * a,
                        ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f,
                        ((a + 2.0f) * x2 - (a + 3.0f)) * x2 * x2 + 1.0f,
                        ((a * x3 - 5.0f * a) * x3 + 8.0f * a) * x3 - 4.0f * a};
    for (int k = 0; k < 4; ++k) {
      t.index[i * 4 + k] = std::min<int64_t>(std::max<int64_t>(static_cast<int64_t>(base) + k - 1, 0), in_size - 1);
      t.weight[i * 4 + k] = w[k];
    }
  }
  return t;
}

void check(const paddle::Tensor& x) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32 && x.shape().size() == 4,
           "ppvh_bicubic_resize takes a float32 [N, C, H, W] CPU tensor");
}

}  // namespace

std::vector<paddle::Tensor> BicubicResizeForward(const paddle::Tensor& x, int out_h, int out_w) {
  check(x);
  const auto& s = x.shape();
  const int64_t planes = s[0] * s[1], h = s[2], w = s[3];
  auto out = paddle::empty({s[0], s[1], out_h, out_w}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const Taps rows = taps(h, out_h), cols = taps(w, out_w);
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel
  {
    std::vector<float> row(w);  // the H-resized row, before the W resize
#pragma omp for schedule(static)
    for (int64_t pq = 0; pq < planes * out_h; ++pq) {
      const int64_t p = pq / out_h, q = pq % out_h;
      const float* src = in + p * h * w;
      const int64_t* ri = &rows.index[q * 4];
      const float* rw = &rows.weight[q * 4];
      for (int64_t j = 0; j < w; ++j) {
        float acc = src[ri[0] * w + j] * rw[0];
        acc = acc + src[ri[1] * w + j] * rw[1];
        acc = acc + src[ri[2] * w + j] * rw[2];
        row[j] = acc + src[ri[3] * w + j] * rw[3];
      }
      float* dst = o + pq * out_w;
      for (int64_t k = 0; k < out_w; ++k) {
        const int64_t* ci = &cols.index[k * 4];
        const float* cw = &cols.weight[k * 4];
        float acc = row[ci[0]] * cw[0];
        acc = acc + row[ci[1]] * cw[1];
        acc = acc + row[ci[2]] * cw[2];
        dst[k] = acc + row[ci[3]] * cw[3];
      }
    }
  }
  return {out};
}

std::vector<paddle::Tensor> BicubicResizeBackward(const paddle::Tensor& x, const paddle::Tensor& dy, int out_h,
                                                  int out_w) {
  check(x);
  const auto& s = x.shape();
  const int64_t planes = s[0] * s[1], h = s[2], w = s[3], size = planes * h * w;
  auto dx = paddle::empty(s, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const Taps rows = taps(h, out_h), cols = taps(w, out_w);
  const float* g = dy.data<float>();
  float* d = dx.data<float>();
  std::fill(d, d + size, 0.0f);
  // Output rows are spread over threads; each thread adds into its own copy of dx (rows of
  // different outputs share source rows), and the copies are summed at the end.
  const int threads = omp_get_max_threads();
  std::vector<std::vector<float>> partial(threads > 1 ? threads : 0);
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    float* mine = d;
    if (threads > 1) {
      partial[t].assign(size, 0.0f);
      mine = partial[t].data();
    }
    std::vector<float> row(w);
#pragma omp for schedule(static)
    for (int64_t pq = 0; pq < planes * out_h; ++pq) {
      const int64_t p = pq / out_h, q = pq % out_h;
      std::fill(row.begin(), row.end(), 0.0f);
      const float* grad = g + pq * out_w;
      for (int64_t k = 0; k < out_w; ++k)
        for (int tap = 0; tap < 4; ++tap) row[cols.index[k * 4 + tap]] += cols.weight[k * 4 + tap] * grad[k];
      float* plane = mine + p * h * w;
      for (int tap = 0; tap < 4; ++tap) {
        float* dst = plane + rows.index[q * 4 + tap] * w;
        const float weight = rows.weight[q * 4 + tap];
        for (int64_t j = 0; j < w; ++j) dst[j] += weight * row[j];
      }
    }
  }
  if (threads > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < size; ++i) {
      float sum = 0.0f;
      for (int t = 0; t < threads; ++t)
        if (!partial[t].empty()) sum += partial[t][i];
      d[i] = sum;
    }
  }
  return {dx};
}

std::vector<std::vector<int64_t>> BicubicResizeShape(const std::vector<int64_t>& x, int out_h, int out_w) {
  return {{x[0], x[1], out_h, out_w}};
}
std::vector<paddle::DataType> BicubicResizeDtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(ppvh_bicubic_resize)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"out_h: int", "out_w: int"})
    .SetKernelFn(PD_KERNEL(BicubicResizeForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BicubicResizeShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BicubicResizeDtype));

PD_BUILD_GRAD_OP(ppvh_bicubic_resize)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"out_h: int", "out_w: int"})
    .SetKernelFn(PD_KERNEL(BicubicResizeBackward));
