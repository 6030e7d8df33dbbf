// The contract between readers (frame folders, videos, NIfTI volumes), the
// loader and the trainer.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cakes::data {

// One example. Video: input (3, T, H, W) float32, target an int64 scalar class.
// Volume: input (C, D, H, W) float32, target (D, H, W) int64 labels.
struct Sample {
  at::Tensor input;
  at::Tensor target;
};

class Dataset {
public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Sample `index`. Every random choice (segment sampling, crops, flips,
  // patches) is drawn from `rng`, so a loader that seeds it per (epoch, index)
  // gets the same batches whatever the number of workers. Throws
  // std::runtime_error whose one-line message names the offending file.
  virtual Sample get(int64_t index, std::mt19937_64& rng) const = 0;
  // Human-readable description for logs ("ssv1 train: 86017 videos").
  virtual std::string describe() const {
    return "dataset of " + std::to_string(size()) + " samples";
  }
  // Number of classes of the targets; 0 when unknown.
  virtual int64_t num_classes() const {
    return 0;
  }
  // Class names, index = class; empty when the dataset has none.
  virtual std::vector<std::string> class_names() const {
    return {};
  }
  // Clip k (0 <= k < clips) of video `index`, for multi-clip evaluation: the
  // deterministic (evaluation) sample, with each segment's frame taken at
  // offset (k + 0.5) / clips of the segment (spread_segment_indices); clips
  // = 1 is get()'s centred clip. The default serves clips = 1 only and
  // throws std::invalid_argument otherwise; video datasets override it.
  virtual Sample clip(int64_t index, int64_t k, int64_t clips) const;
};

// Frame index of each of `segments` equal segments of `num_frames` frames at
// offset (k + 0.5) / clips of the segment, clamped to the video.
std::vector<int64_t> spread_segment_indices(
    int64_t num_frames, int64_t segments, int64_t k, int64_t clips);

} // namespace cakes::data
