// Meta kernels of cakes::shrunk_conv3d and its backward: shapes, dtypes and
// memory formats without data, for shape propagation (meta and fake tensors,
// FX and tracing tools). They check the arguments as the real kernels do.
#include "../shrunk_conv3d_check.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace cakes::ops {
namespace {

at::Tensor shrunk_conv3d_meta(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  detail::check_shrunk_conv3d_args(input, weights, stride, dilation);
  return at::empty(
      detail::shrunk_conv3d_output_sizes(input, weights, stride),
      input.options().memory_format(detail::output_memory_format(input)));
}

std::tuple<at::Tensor, std::vector<at::Tensor>> shrunk_conv3d_backward_meta(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  detail::check_shrunk_conv3d_backward_args(
      grad_output, input, weights, stride, dilation);
  at::Tensor grad_input;
  if (output_mask[0])
    grad_input = at::empty_like(input, detail::output_memory_format(input));
  std::vector<at::Tensor> grad_weights;
  if (output_mask[1])
    for (const auto& w : weights)
      grad_weights.push_back(at::empty_like(w, c10::MemoryFormat::Contiguous));
  return {grad_input, grad_weights};
}

} // namespace

TORCH_LIBRARY_IMPL(cakes, Meta, m) {
  m.impl("shrunk_conv3d", TORCH_FN(shrunk_conv3d_meta));
  m.impl("_shrunk_conv3d_backward", TORCH_FN(shrunk_conv3d_backward_meta));
  m.impl("_shrunk_conv3d_generic", TORCH_FN(shrunk_conv3d_meta));
}

} // namespace cakes::ops
