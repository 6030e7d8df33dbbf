// What follows a layer's convolution at inference: a per-channel bias (the
// folded BatchNorm), a residual addition and a ReLU, each in one pass over the
// output when it is a contiguous float32 tensor outside autograd (these passes
// are memory bound and cost the same in every variant of a network, so they
// pull time ratios towards 1), else through the usual ops.
//
// OpLayerImpl::forward_folded calls epilogue_ on the convolution's output; a
// convolution op that applies the epilogue in its own output loop replaces
// that pair.
#pragma once

#include <ATen/core/Tensor.h>

namespace cakes::nn {

// In place: y = [relu]((y + bias per channel) + residual); bias and residual
// may be undefined (left out). y (N, C, ...), bias (C), residual y's shape.
at::Tensor& epilogue_(
    at::Tensor& y,
    const at::Tensor& bias,
    const at::Tensor& residual,
    bool relu);

// Whether epilogue_ takes its one-pass path for y.
bool fusable(const at::Tensor& y);

} // namespace cakes::nn
