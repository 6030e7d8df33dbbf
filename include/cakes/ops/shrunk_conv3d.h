// cakes::shrunk_conv3d — the CAKES operation (docs/CAKES.md §1–2).
//
// A 3D convolution whose output channels are split into groups, each group with
// its own sub-kernel. Registered with the PyTorch dispatcher as
//
//   cakes::shrunk_conv3d(Tensor input, Tensor[] weights, int[3] stride,
//                        int[3] dilation) -> Tensor
//
// so it is callable from C++ (below) and, after
// torch.ops.load_library("libcakes.so"), from Python as
// torch.ops.cakes.shrunk_conv3d.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <tuple>
#include <vector>

namespace cakes::ops {

// input:   (N, C_in, D, H, W), any strides; float32 or float64 on CPU, any
//          floating dtype the device's convolution supports elsewhere.
// weights: weights[i] is (c_i, C_in, kd, kh, kw), same dtype and device as the
//          input; each extent is 1 or odd; c_i may be 0. No bias.
// stride, dilation: three positive integers each, over (D, H, W).
// Padding is "same": dilation*(k-1)/2 on every axis of extent k, 0 where the
// extent is 1, so every group has the same output size
// floor((in - 1) / stride) + 1 per axis.
// Returns (N, sum c_i, D_out, H_out, W_out), groups concatenated in order;
// channels_last_3d when the input is (with autograd on; CPU inference without
// autograd returns it contiguous), else contiguous. Throws c10::Error naming
// what was got and what was expected on bad arguments. Differentiable once
// with respect to the input and every weight; a second derivative throws.
// Kernels: fused on CPU; per-group convolutions into one output on other
// devices (CUDA, ...); shapes only on Meta. Under torch.autocast, bfloat16
// and float16 arguments are computed in float32 and the result is returned in
// the input's dtype.
at::Tensor shrunk_conv3d(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride = {1, 1, 1},
    at::IntArrayRef dilation = {1, 1, 1});

// The backward op (registered as cakes::_shrunk_conv3d_backward); output_mask
// selects (grad_input, grad_weights). Exposed for the autograd kernel and
// tests.
std::tuple<at::Tensor, std::vector<at::Tensor>> shrunk_conv3d_backward(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    std::array<bool, 2> output_mask);

// Which CPU implementation runs the op. Auto: for float32 on CPUs with
// AVX-512, the direct kernels or the panel GEMMs, chosen per shape (both
// compute the same sums; results differ by float rounding only); the general
// engine (tiled im2col + oneDNN sgemm) for float64 and CPUs without AVX-512.
// Gemm, Direct and Panel force one implementation where it applies (tests and
// benchmarks compare them; Direct and Panel fall back to the general engine
// for float64). Process-wide.
enum class Engine { Auto, Gemm, Direct, Panel };
void set_engine(Engine engine);
Engine engine();

// Multiply-adds of the convolution (docs/CAKES.md §2):
// N * D_out*H_out*W_out * C_in * sum_i c_i * vol_i.
int64_t shrunk_conv3d_macs(
    at::IntArrayRef input_sizes,
    at::TensorList weights,
    at::IntArrayRef stride);

} // namespace cakes::ops
