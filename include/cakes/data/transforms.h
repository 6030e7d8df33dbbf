// Sampling and augmentation for video clips and volumes. Pure functions on
// at::Tensor; every random choice comes from the caller's generator so a
// sample is a function of (index, seed).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace cakes::data {

// ---- Video -----------------------------------------------------------------

// TSN segment sampling: the video's frames [0, num_frames) are cut into
// `num_segments` equal segments and `frames_per_segment` consecutive frames
// are taken from each, starting at a random offset inside the segment
// (training, rng != nullptr) or at the segment centre (evaluation, rng ==
// nullptr), as in TSN/TRN. Returns num_segments * frames_per_segment 0-based
// indices, non-decreasing, clamped to num_frames - 1. A video shorter than
// the segments repeats frames evenly instead of returning all zeros.
// Throws std::invalid_argument when num_frames < 1 or num_segments < 1.
std::vector<int64_t> tsn_segment_indices(
    int64_t num_frames,
    int64_t num_segments,
    int64_t frames_per_segment,
    std::mt19937_64* rng);

// uint8 (T, H, W, 3) frames -> float32 (3, T, H, W) in [0, 1].
at::Tensor frames_to_clip(const at::Tensor& frames);

// Clip transforms take and return float (C, T, H, W); H and W are the last
// two dimensions, so they also accept any (..., H, W) tensor.

// Bilinear resize to exactly (height, width), antialiased when shrinking.
at::Tensor resize(const at::Tensor& clip, int64_t height, int64_t width);
// Resize so the shorter side equals `size`, keeping the aspect ratio.
at::Tensor resize_short_side(const at::Tensor& clip, int64_t size);
// Central (height, width) window; throws std::invalid_argument if larger than
// the clip.
at::Tensor center_crop(const at::Tensor& clip, int64_t height, int64_t width);

// TSN's GroupMultiScaleCrop: a crop whose sides are drawn from
// `scales` x min(H, W) (aspect distortion up to `max_distort` scale steps),
// placed at one of the 13 fixed positions (corners, centre, edge midpoints,
// quarter points), resized to (size, size).
struct MultiScaleCropOptions {
  int64_t size = 224;
  std::vector<double> scales{1.0, 0.875, 0.75, 0.66};
  int64_t max_distort = 1;
};
at::Tensor multi_scale_crop(
    const at::Tensor& clip,
    const MultiScaleCropOptions& options,
    std::mt19937_64& rng);

// Pairs of classes that swap meaning under a horizontal flip ("pushing left
// to right" <-> "pushing right to left"). Each pair applies both ways.
using LabelSwaps = std::vector<std::pair<int64_t, int64_t>>;
// Something-Something V1 (TRN): 86<->87, 93<->94, 166<->167.
LabelSwaps ssv1_flip_swaps();
int64_t flipped_label(int64_t label, const LabelSwaps& swaps);

// Mirrors W (the last dimension).
at::Tensor hflip(const at::Tensor& clip);

// (x - mean[c]) / std[c] along dimension 0 (channels).
at::Tensor normalize(
    const at::Tensor& clip,
    const std::vector<double>& mean,
    const std::vector<double>& std);

// ---- Volumes ---------------------------------------------------------------

// Volumes are (C, D, H, W) float; labels (D, H, W) int64.

// Clips intensities to [lo, hi] and maps them linearly to [0, 1] (a CT window,
// e.g. lo = -1000, hi = 1000 HU). Throws std::invalid_argument if hi <= lo.
at::Tensor window_normalize(const at::Tensor& volume, double lo, double hi);

// Per-channel z-score: (x - mean) / std, statistics over the non-zero voxels
// of each channel when `nonzero_only` (MRI with a zero background, as in MSD;
// background stays 0), else over all voxels. A constant channel becomes 0.
at::Tensor zscore_normalize(const at::Tensor& volume, bool nonzero_only);

// Which voxels a per-volume z-score takes its mean and std from.
enum class ZScoreRegion {
  Nonzero, // voxels != 0: the head of skull-stripped MRI (MSD, nnU-Net)
  All,     // every voxel
};

// Intensity normalisation of a volume whose channels are the modalities of a
// task ("CT", "MRI", "FLAIR", ... as dataset.json names them).
struct IntensityOptions {
  // The window CT channels are clipped to, in HU.
  double ct_lo = -1000.0;
  double ct_hi = 1000.0;
  // Unset (default): CT channels are clipped to the window and mapped to
  // [0, 1]; every other channel gets a z-score over its non-zero voxels.
  // Set: every channel gets a z-score over `zscore`'s voxels of that volume,
  // CT channels after clipping to the window.
  bool zscore_set = false;
  ZScoreRegion zscore = ZScoreRegion::Nonzero;
};

// (C, D, H, W) with C == modalities.size() -> normalised per IntensityOptions,
// each volume by its own statistics. Throws std::invalid_argument when the
// counts differ or the CT window is empty.
at::Tensor normalize_intensities(
    const at::Tensor& volume,
    const std::vector<std::string>& modalities,
    const IntensityOptions& options);

// A (pd, ph, pw) patch of the volume and its labels. With probability
// `foreground_fraction` the patch is centred (as far as the bounds allow) on
// a voxel drawn uniformly from the foreground (label > 0); otherwise its
// corner is uniform over the volume. A volume smaller than the patch is
// zero-padded (label 0) first. A volume with no foreground always samples
// uniformly.
struct PatchOptions {
  std::vector<int64_t> size{64, 64, 64};
  double foreground_fraction = 0.33;
};
std::pair<at::Tensor, at::Tensor> random_patch(
    const at::Tensor& volume,
    const at::Tensor& labels,
    const PatchOptions& options,
    std::mt19937_64& rng);

// Flips each spatial axis independently with probability `p` (volume and
// labels together).
std::pair<at::Tensor, at::Tensor> random_flip(
    const at::Tensor& volume,
    const at::Tensor& labels,
    double p,
    std::mt19937_64& rng);

} // namespace cakes::data
