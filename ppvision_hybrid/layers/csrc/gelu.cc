// GELU (Hendrycks & Gimpel 2016), exact form x * Phi(x), float32 on the CPU, forward and
// backward, vectorised and spread over OpenMP threads in chunks. Same function as F.gelu(x, approximate=False) to a few
// float32 ulp (vector_math.h).
#include <algorithm>
#include <vector>

#include "paddle/extension.h"
#include "vector_math.h"

using ppvh::v16;

namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per task: 64 KiB of input

template <typename Body>
void for_chunks(int64_t n, Body body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
}

inline v16 gelu(v16 x) { return x * ppvh::normal_cdf(x); }
inline v16 gelu_slope(v16 x) { return ppvh::normal_cdf(x) + x * 0.39894228040143268f * ppvh::vexp(-0.5f * x * x); }

void check(const paddle::Tensor& x) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "ppvh_gelu takes float32 CPU tensors");
}

}  // namespace

std::vector<paddle::Tensor> GeluForward(const paddle::Tensor& x) {
  check(x);
  auto y = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  float* out = y.data<float>();
  for_chunks(x.numel(), [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + ppvh::kLanes <= end; i += ppvh::kLanes) ppvh::store(out + i, gelu(ppvh::load(in + i)));
    if (i < end) {
      float a[ppvh::kLanes] = {0}, b[ppvh::kLanes];
      std::copy(in + i, in + end, a);
      ppvh::store(b, gelu(ppvh::load(a)));
      std::copy(b, b + (end - i), out + i);
    }
  });
  return {y};
}

std::vector<paddle::Tensor> GeluBackward(const paddle::Tensor& x, const paddle::Tensor& dy) {
  check(x);
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  const float* g = dy.data<float>();
  float* out = dx.data<float>();
  for_chunks(x.numel(), [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + ppvh::kLanes <= end; i += ppvh::kLanes)
      ppvh::store(out + i, ppvh::load(g + i) * gelu_slope(ppvh::load(in + i)));
    if (i < end) {
      float a[ppvh::kLanes] = {0}, d[ppvh::kLanes] = {0}, b[ppvh::kLanes];
      std::copy(in + i, in + end, a);
      std::copy(g + i, g + end, d);
      ppvh::store(b, ppvh::load(d) * gelu_slope(ppvh::load(a)));
      std::copy(b, b + (end - i), out + i);
    }
  });
  return {dx};
}

std::vector<std::vector<int64_t>> GeluShape(const std::vector<int64_t>& x) { return {x}; }
std::vector<paddle::DataType> GeluDtype(const paddle::DataType& x) { return {x}; }

PD_BUILD_OP(ppvh_gelu)
    .Inputs({"X"})
    .Outputs({"Out"})
    .SetKernelFn(PD_KERNEL(GeluForward))
    .SetInferShapeFn(PD_INFER_SHAPE(GeluShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(GeluDtype));

PD_BUILD_GRAD_OP(ppvh_gelu)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .SetKernelFn(PD_KERNEL(GeluBackward));
