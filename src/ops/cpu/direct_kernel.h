// Direct float32 AVX-512 kernels for shrunk convolutions (internal). Strided
// layers run as stride-1 sums over phase-split copies of the input.
//
// Why not oneDNN here (measured, see docs/DESIGN.md): oneDNN has no primitive
// for a convolution whose output channels use different kernel shapes. Its
// channels-last convolutions vectorise over output channels, so a 21-channel
// group costs as much as 32, and writing into a channel offset of a shared
// destination drops them to the reference implementation; its sgemm needs an
// im2col copy that it packs again on every call. These kernels vectorise over
// output positions (flattened H*W of one plane), so any channel count runs at
// full width, each output row is written once in place, and only the taps of
// each channel's own sub-kernel are multiplied.
//
// Every kernel is a register-blocked sum over a list of *entries*: (input
// channel, plane offset, in-plane shift, boundary-mask class). The forward pass
// of a group lists (ci, tap); the input gradient lists (co, flipped tap) over
// all groups; the weight gradient reduces over positions instead.
#pragma once

#include <cstdint>
#include <vector>

namespace cakes::detail::direct {

struct Group {
  const float* weight; // (c, C_in, kd, kh, kw) contiguous
  int64_t channels, kd, kh, kw;
};

struct Geometry {
  int64_t batch, in_channels, out_channels, D, H, W; // D, H, W: of the input
  int64_t dil_d, dil_h, dil_w;
  // Output extents are (D - 1) / stride_d + 1 etc. ("same" padding).
  int64_t stride_d = 1, stride_h = 1, stride_w = 1;
};

// True when this CPU can run the kernels (AVX-512F).
bool available();

void forward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    float* out);
// Gradients of forward(): grad_in (skipped when null) and grad_weights[i]
// with the shape of groups[i].weight (skipped when empty), both overwritten.
void backward(
    const Geometry& g,
    const std::vector<Group>& groups,
    const float* in,
    const float* grad_out,
    float* grad_in,
    const std::vector<float*>& grad_weights);

} // namespace cakes::detail::direct
