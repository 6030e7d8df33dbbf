#include "shrunk_conv3d_check.h"

#include <c10/util/Exception.h>

namespace cakes::ops::detail {

void check_shrunk_conv3d_args(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  TORCH_CHECK(
      input.dim() == 5,
      "shrunk_conv3d: expected input of rank 5 (N, C_in, D, H, W), got rank ",
      input.dim(),
      " with shape ",
      input.sizes());
  TORCH_CHECK(
      at::isFloatingType(input.scalar_type()),
      "shrunk_conv3d: expected a floating-point input, got ",
      input.scalar_type());
  TORCH_CHECK(
      !weights.empty(),
      "shrunk_conv3d: expected at least one weight tensor, got none");
  TORCH_CHECK(
      stride.size() == 3 && dilation.size() == 3,
      "shrunk_conv3d: expected 3 strides and 3 dilations (D, H, W), got ",
      stride,
      " and ",
      dilation);
  for (int a = 0; a < 3; ++a)
    TORCH_CHECK(
        stride[a] > 0 && dilation[a] > 0,
        "shrunk_conv3d: expected positive strides and dilations, got ",
        stride,
        " and ",
        dilation);
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = weights[i];
    TORCH_CHECK(
        w.defined(), "shrunk_conv3d: weights[", i, "] is an undefined tensor");
    TORCH_CHECK(
        w.dim() == 5 && w.size(1) == input.size(1),
        "shrunk_conv3d: expected weights[",
        i,
        "] of shape (c_i, ",
        input.size(1),
        ", kd, kh, kw) for an input with C_in = ",
        input.size(1),
        ", got ",
        w.sizes());
    for (int a = 2; a < 5; ++a)
      TORCH_CHECK(
          w.size(a) % 2 == 1,
          "shrunk_conv3d: weights[",
          i,
          "] has kernel extents ",
          w.sizes().slice(2),
          "; expected each extent to be 1 or odd");
    TORCH_CHECK(
        w.scalar_type() == input.scalar_type() && w.device() == input.device(),
        "shrunk_conv3d: weights[",
        i,
        "] is ",
        w.scalar_type(),
        " on ",
        w.device(),
        " but the input is ",
        input.scalar_type(),
        " on ",
        input.device());
  }
}

std::vector<int64_t> shrunk_conv3d_output_sizes(
    const at::Tensor& input, at::TensorList weights, at::IntArrayRef stride) {
  int64_t c_out = 0;
  for (const auto& w : weights)
    c_out += w.size(0);
  std::vector<int64_t> sizes{input.size(0), c_out};
  for (int a = 0; a < 3; ++a) {
    const int64_t in = input.size(2 + a);
    sizes.push_back(in == 0 ? 0 : (in - 1) / stride[a] + 1);
  }
  return sizes;
}

void check_shrunk_conv3d_backward_args(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  check_shrunk_conv3d_args(input, weights, stride, dilation);
  const auto sizes = shrunk_conv3d_output_sizes(input, weights, stride);
  TORCH_CHECK(
      grad_output.sizes() == at::IntArrayRef(sizes),
      "shrunk_conv3d_backward: expected grad_output of shape ",
      at::IntArrayRef(sizes),
      ", got ",
      grad_output.sizes());
}

std::vector<int64_t>
same_padding(const at::Tensor& weight, at::IntArrayRef dilation) {
  return {
      dilation[0] * (weight.size(2) - 1) / 2,
      dilation[1] * (weight.size(3) - 1) / 2,
      dilation[2] * (weight.size(4) - 1) / 2};
}

c10::MemoryFormat output_memory_format(const at::Tensor& input) {
  return input.dim() == 5 && !input.is_contiguous() &&
                 input.is_contiguous(c10::MemoryFormat::ChannelsLast3d)
             ? c10::MemoryFormat::ChannelsLast3d
             : c10::MemoryFormat::Contiguous;
}

} // namespace cakes::ops::detail
