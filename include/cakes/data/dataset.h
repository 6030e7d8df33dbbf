// The contract between readers (frame folders, videos, NIfTI volumes), the
// loader and the trainer.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>

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
};

} // namespace cakes::data
