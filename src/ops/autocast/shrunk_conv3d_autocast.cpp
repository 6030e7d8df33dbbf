// Autocast policy of cakes::shrunk_conv3d: under torch.autocast, bfloat16 and
// float16 arguments are computed in float32 (the CPU kernels have no reduced
// precision path yet) and the result is returned in the input's dtype, so a
// network that autocasts around the op keeps its activation dtype. float32
// and float64 pass through unchanged. The same policy holds on CUDA.
#include "cakes/ops/shrunk_conv3d.h"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

namespace cakes::ops {
namespace {

bool reduced(at::ScalarType t) {
  return t == at::kHalf || t == at::kBFloat16;
}

at::Tensor to_float(const at::Tensor& t) {
  return t.defined() && reduced(t.scalar_type()) ? t.to(at::kFloat) : t;
}

at::Tensor shrunk_conv3d_autocast(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKeySet(
      {c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA}));
  std::vector<at::Tensor> ws;
  ws.reserve(weights.size());
  for (const auto& w : weights)
    ws.push_back(to_float(w));
  auto output = shrunk_conv3d(to_float(input), ws, stride, dilation);
  return reduced(input.scalar_type()) ? output.to(input.scalar_type()) : output;
}

} // namespace

TORCH_LIBRARY_IMPL(cakes, AutocastCPU, m) {
  m.impl("shrunk_conv3d", TORCH_FN(shrunk_conv3d_autocast));
}

TORCH_LIBRARY_IMPL(cakes, AutocastCUDA, m) {
  m.impl("shrunk_conv3d", TORCH_FN(shrunk_conv3d_autocast));
}

} // namespace cakes::ops
