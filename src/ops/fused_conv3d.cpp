// Schema, dispatcher entry point and autograd kernel of
// cakes::shrunk_conv3d_fused (see cakes/ops/fused_conv3d.h). The CPU kernel
// is in cpu/fused_conv3d_kernel.cpp.
#include "cakes/ops/fused_conv3d.h"
#include "cakes/ops/shrunk_conv3d.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace cakes::ops {

at::Tensor shrunk_conv3d_fused(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    const c10::optional<at::Tensor>& bias,
    const c10::optional<at::Tensor>& residual,
    bool relu) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("cakes::shrunk_conv3d_fused", "")
                       .typed<decltype(shrunk_conv3d_fused)>();
  return op.call(input, weights, stride, dilation, bias, residual, relu);
}

namespace {

// With gradients required, the separate differentiable steps; otherwise the
// fused kernel below autograd.
at::Tensor shrunk_conv3d_fused_autograd(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    const c10::optional<at::Tensor>& bias,
    const c10::optional<at::Tensor>& residual,
    bool relu) {
  bool needs_grad = input.requires_grad();
  for (const auto& w : weights)
    needs_grad = needs_grad || w.requires_grad();
  if (bias && bias->defined())
    needs_grad = needs_grad || bias->requires_grad();
  if (residual && residual->defined())
    needs_grad = needs_grad || residual->requires_grad();
  if (!needs_grad || !at::GradMode::is_enabled()) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return shrunk_conv3d_fused(
        input, weights, stride, dilation, bias, residual, relu);
  }
  auto y = shrunk_conv3d(input, weights, stride, dilation);
  if (bias && bias->defined()) {
    TORCH_CHECK(
        bias->dim() == 1 && bias->size(0) == y.size(1),
        "shrunk_conv3d_fused: expected bias of shape (",
        y.size(1),
        "), got ",
        bias->sizes());
    y = y + bias->view({1, -1, 1, 1, 1});
  }
  if (residual && residual->defined()) {
    TORCH_CHECK(
        residual->sizes() == y.sizes(),
        "shrunk_conv3d_fused: expected residual of shape ",
        y.sizes(),
        ", got ",
        residual->sizes());
    y = y + *residual;
  }
  return relu ? at::relu(y) : y;
}

} // namespace

TORCH_LIBRARY_FRAGMENT(cakes, m) {
  m.def("shrunk_conv3d_fused(Tensor input, Tensor[] weights, "
        "int[3] stride=[1,1,1], int[3] dilation=[1,1,1], Tensor? bias=None, "
        "Tensor? residual=None, bool relu=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(cakes, Autograd, m) {
  m.impl("shrunk_conv3d_fused", TORCH_FN(shrunk_conv3d_fused_autograd));
}

} // namespace cakes::ops
