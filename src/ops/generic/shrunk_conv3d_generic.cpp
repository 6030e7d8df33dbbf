#include "shrunk_conv3d_generic.h"

#include "../shrunk_conv3d_check.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace cakes::ops::detail {

at::Tensor shrunk_conv3d_generic(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  check_shrunk_conv3d_args(input, weights, stride, dilation);
  const auto sizes = shrunk_conv3d_output_sizes(input, weights, stride);
  const auto options =
      input.options().memory_format(output_memory_format(input));
  if (c10::multiply_integers(sizes) == 0)
    return at::zeros(sizes, options);
  auto output = at::empty(sizes, options);
  int64_t offset = 0;
  for (const auto& w : weights) {
    const int64_t c = w.size(0);
    if (c == 0)
      continue;
    output.narrow(1, offset, c)
        .copy_(at::convolution(
            input,
            w,
            /*bias=*/{},
            stride,
            same_padding(w, dilation),
            dilation,
            /*transposed=*/false,
            /*output_padding=*/{0, 0, 0},
            /*groups=*/1));
    offset += c;
  }
  return output;
}

std::tuple<at::Tensor, std::vector<at::Tensor>> shrunk_conv3d_generic_backward(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  check_shrunk_conv3d_backward_args(
      grad_output, input, weights, stride, dilation);
  const auto sizes = shrunk_conv3d_output_sizes(input, weights, stride);
  at::Tensor grad_input;
  if (output_mask[0])
    grad_input = at::zeros_like(input, output_memory_format(input));
  std::vector<at::Tensor> grad_weights;
  const bool empty = c10::multiply_integers(sizes) == 0 || input.numel() == 0;
  int64_t offset = 0;
  for (const auto& w : weights) {
    const int64_t c = w.size(0);
    if (c == 0 || empty) {
      if (output_mask[1])
        grad_weights.push_back(at::zeros_like(w));
      offset += c;
      continue;
    }
    auto [gi, gw, gb] = at::convolution_backward(
        grad_output.narrow(1, offset, c),
        input,
        w,
        /*bias_sizes=*/{},
        stride,
        same_padding(w, dilation),
        dilation,
        /*transposed=*/false,
        /*output_padding=*/{0, 0, 0},
        /*groups=*/1,
        {output_mask[0], output_mask[1], false});
    if (output_mask[0])
      grad_input.add_(gi);
    if (output_mask[1])
      grad_weights.push_back(gw);
    offset += c;
  }
  return {grad_input, grad_weights};
}

} // namespace cakes::ops::detail

// Every backend without a kernel of its own (CUDA, ...) runs these; the CPU
// and Meta kernels, registered directly, take precedence on their devices.
TORCH_LIBRARY_IMPL(cakes, CompositeExplicitAutograd, m) {
  m.impl("shrunk_conv3d", TORCH_FN(cakes::ops::detail::shrunk_conv3d_generic));
  m.impl(
      "_shrunk_conv3d_backward",
      TORCH_FN(cakes::ops::detail::shrunk_conv3d_generic_backward));
  m.impl(
      "_shrunk_conv3d_generic",
      TORCH_FN(cakes::ops::detail::shrunk_conv3d_generic));
}
