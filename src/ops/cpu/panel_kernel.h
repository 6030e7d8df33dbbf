// Float32 AVX-512 shrunk convolutions as GEMMs over packed im2col panels
// (internal). Same contract as direct_kernel.h; which engine runs a call is
// chosen per shape (see shrunk_conv3d_kernel.cpp and docs/DESIGN.md).
//
// Every pass is one register-blocked GEMM microkernel, C[MR][NV vectors] +=
// A[MR][k] (broadcast) x B[k][NV vectors], whose B is a *panel*: rows
// (channel, tap) of the tensor being read, each holding a block of output
// positions packed densely into aligned vectors. Positions are flattened over
// the whole (D, H, W) grid of a sample, so no lane is spent on row borders
// however narrow the plane (a 7x7 plane wastes 23% of its lanes when
// vectorised per padded row), every load of the microkernel is aligned, and
// strides and dilations live in the packing only. A is read where it lies:
// the forward broadcasts W[co][ci][t] in its natural layout, the input
// gradient the same weights transposed by addressing, so no weight is
// repacked per call.
//
// - Forward, per group: Y[co][p] = sum over (ci, t) of W[co][ci][t] *
//   panel_X[(ci, t)][p].
// - Input gradient, gather form per phase of the stride: dX[ci][i] = sum over
//   groups, co and the taps t of that phase of W[co][ci][t] *
//   panel_dY[(co, t)][i], panel_dY reading dY at flipped offsets.
// - Weight gradient: dW[co][(ci, t)] = sum over p of dY[co][p] *
//   panel_X[(ci, t)][p], a reduction over positions (dot form) with vector
//   partial sums.
#pragma once

#include "direct_kernel.h"

#include <vector>

namespace cakes::detail::panel {

using direct::Geometry;
using direct::Group;

// What the forward does to its sums before storing them (inference: a folded
// BatchNorm's shift, a residual addition, a ReLU), saving a pass over the
// output for each: out = max(0?, conv + bias[c] + residual).
struct Epilogue {
  const float* bias = nullptr;     // one per output channel, or none
  const float* residual = nullptr; // shaped like the output, or none
  bool relu = false;
};

void forward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    float* out,
    const Epilogue& epilogue = {});

// Gradients of forward(): grad_in (skipped when null) and grad_weights[i]
// with the shape of groups[i].weight (skipped when empty), both overwritten.
void backward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const float* grad_out,
    float* grad_in,
    const std::vector<float*>& grad_weights);

} // namespace cakes::detail::panel
