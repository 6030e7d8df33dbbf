// Sliding-window inference over a volume too large for one forward pass:
// overlapping windows, each window's output weighted by a Gaussian centred on
// it (borders, where a window sees little context, count less), weighted
// average where windows overlap.
//
// Memory: windows are visited in order of their start along D, and a slab of
// D is final as soon as the next window starts past it; so the accumulator
// holds only (classes, window_d + a step, H, W), whatever the volume depth.
// sliding_window_labels therefore never holds classes × volume;
// sliding_window_logits does, because that is its output.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

namespace cakes::eval {

// (B, C_in, wd, wh, ww) -> (B, K, wd, wh, ww): logits (or probabilities) for
// a batch of windows. Called under no-grad; the caller puts its model in eval
// mode and moves windows to its device if needed.
using WindowPredictor = std::function<at::Tensor(const at::Tensor&)>;

struct SlidingWindowOptions {
  std::array<int64_t, 3> window = {64, 64, 64}; // (D, H, W)
  // Fraction of a window shared with its neighbour, in [0, 1).
  double overlap = 0.5;
  // Gaussian sigma per axis = sigma_scale * window (nnU-Net's 1/8);
  // gaussian = false weights every voxel of a window equally.
  bool gaussian = true;
  double sigma_scale = 0.125;
  // Windows per predictor call.
  int64_t batch_windows = 1;
};

// Window starts along one axis: evenly spaced from 0 to size - window with
// at most window * (1 - overlap) between them; {0} when window >= size.
std::vector<int64_t>
window_starts(int64_t size, int64_t window, double overlap);

// volume (C_in, D, H, W) -> weighted-average output (K, D, H, W) float32.
// A volume smaller than the window along an axis is zero-padded to it and the
// output cropped back. Throws std::invalid_argument on bad options and when
// the predictor's output has the wrong shape.
at::Tensor sliding_window_logits(
    const at::Tensor& volume,
    const WindowPredictor& predict,
    const SlidingWindowOptions& options);

// volume (C_in, D, H, W) -> labels (D, H, W) int64, the argmax over K of the
// weighted average, computed slab by slab.
at::Tensor sliding_window_labels(
    const at::Tensor& volume,
    const WindowPredictor& predict,
    const SlidingWindowOptions& options);

} // namespace cakes::eval
