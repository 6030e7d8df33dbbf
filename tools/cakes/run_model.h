// Evaluation shared by `cakes eval`, `cakes train` (per-epoch validation) and
// `cakes demo`: top-1/top-5 over video clips, per-class Dice over volumes.
#pragma once

#include "data_options.h"

#include "cakes/models/zoo.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cakes::cli {

struct VideoScores {
  int64_t videos = 0;
  double top1 = 0, top5 = 0; // fractions
};

// Centred clips (clips = 1) or `clips` clips per video whose segment offsets
// are spread evenly inside each TSN segment; their logits are averaged.
// Switches the module to eval mode.
VideoScores evaluate_video(
    const models::Model& model,
    const DatasetHandle& data,
    const DataOptions& options,
    int64_t clips,
    int64_t batch);

struct VolumeScores {
  std::vector<std::string> class_names;
  std::vector<double> dice;   // per class; NaN where the class is absent
  double mean_foreground = 0; // mean over present classes except class 0
  int64_t cases = 0;
};

// Sliding-window labels per case (window D H W, overlap, Gaussian weights),
// Dice accumulated over all cases. Switches the module to eval mode.
VolumeScores evaluate_volumes(
    const models::Model& model,
    const DatasetHandle& data,
    const std::array<int64_t, 3>& window,
    double overlap);

// Throws std::invalid_argument naming `path` when it exists and !force.
void refuse_overwrite(const std::string& path, bool force);

} // namespace cakes::cli
