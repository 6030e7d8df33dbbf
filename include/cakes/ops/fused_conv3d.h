// cakes::shrunk_conv3d_fused — the CAKES convolution with an inference
// epilogue written by the convolution itself.
//
//   y = shrunk_conv3d(input, weights, stride, dilation)
//   y += bias[c]          (when bias is given: e.g. a folded BatchNorm's shift)
//   y += residual         (when given: a ResNet block's shortcut)
//   y = max(y, 0)         (when relu)
//
// Each step done separately is one more pass over the output in memory; here
// the float32 AVX-512 engines apply them to the sums in registers before the
// single store. Registered with the PyTorch dispatcher as
//
//   cakes::shrunk_conv3d_fused(Tensor input, Tensor[] weights, int[3] stride,
//       int[3] dilation, Tensor? bias, Tensor? residual, bool relu) -> Tensor
//
// It is differentiable: when gradients are needed it runs as the separate
// differentiable steps above (training gains nothing from the fusion: the
// backward needs the pre-activation values).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Optional.h>

namespace cakes::ops {

// input, weights, stride, dilation: as for shrunk_conv3d (cakes/ops/
// shrunk_conv3d.h). bias: (C_out,) with the input's dtype and device.
// residual: shaped like the output, same dtype and device. Throws c10::Error
// naming the mismatch on bad arguments.
at::Tensor shrunk_conv3d_fused(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    const c10::optional<at::Tensor>& bias,
    const c10::optional<at::Tensor>& residual,
    bool relu);

} // namespace cakes::ops
