// The device-generic implementation of cakes::shrunk_conv3d: one
// at::convolution per group, each written into its channel slice of one
// preallocated output, and at::convolution_backward per group for the
// gradients. It serves every device without a kernel of its own (CUDA and
// others; CPU too when the op library is built without the CPU kernels), and
// the op cakes::_shrunk_conv3d_generic, which runs it on any device so that
// tests can compare it with the fused CPU kernel. Internal to the op library.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <tuple>
#include <vector>

namespace cakes::ops::detail {

at::Tensor shrunk_conv3d_generic(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation);

// output_mask selects (grad_input, grad_weights); unselected results are
// undefined.
std::tuple<at::Tensor, std::vector<at::Tensor>> shrunk_conv3d_generic_backward(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    std::array<bool, 2> output_mask);

} // namespace cakes::ops::detail
