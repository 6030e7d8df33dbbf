// Argument checks and output sizes of cakes::shrunk_conv3d shared by the
// kernels that are not CPU-specific (device-generic, Meta). Internal to the
// op library.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <vector>

namespace cakes::ops::detail {

// Throws c10::Error naming what was got and what was expected: input of rank
// 5 and a floating dtype, at least one weight, each (c_i, C_in, kd, kh, kw)
// with odd extents and the input's dtype and device, three positive strides
// and dilations.
void check_shrunk_conv3d_args(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation);

// The backward's arguments: those of the forward, and grad_output of the
// forward's output shape.
void check_shrunk_conv3d_backward_args(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation);

// (N, sum c_i, D_out, H_out, W_out) with "same" padding:
// out = floor((in - 1) / stride) + 1 per axis (0 for an empty axis).
std::vector<int64_t> shrunk_conv3d_output_sizes(
    const at::Tensor& input, at::TensorList weights, at::IntArrayRef stride);

// "Same" padding of one weight: dilation * (k - 1) / 2 per axis.
std::vector<int64_t>
same_padding(const at::Tensor& weight, at::IntArrayRef dilation);

// The memory format outputs and input gradients follow: channels_last_3d
// when the input is laid out that way, else contiguous.
c10::MemoryFormat output_memory_format(const at::Tensor& input);

} // namespace cakes::ops::detail
