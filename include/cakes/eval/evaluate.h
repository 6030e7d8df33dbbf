// Evaluation of a model on a dataset, shared by `cakes eval`, validation during
// training and the search: top-1/top-5 over video clips, per-class Dice over
// volumes by sliding-window inference.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/models/model.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cakes::eval {

struct VideoScores {
  int64_t videos = 0;
  double top1 = 0, top5 = 0; // fractions
};

// The dataset's evaluation samples (clips = 1), or `clips` clips per video
// (Dataset::clip) whose logits are averaged, `batch` videos per forward pass.
// Switches the module to eval mode. Throws std::invalid_argument when clips or
// batch is not positive.
VideoScores evaluate_video(
    const models::Model& model,
    const data::Dataset& dataset,
    int64_t clips = 1,
    int64_t batch = 8);

struct VolumeScores {
  std::vector<std::string> class_names; // the dataset's, else "0", "1", ...
  std::vector<double> dice;   // per class; NaN where the class is absent
  double mean_foreground = 0; // mean over present classes except class 0
  int64_t cases = 0;
};

// Sliding-window labels per case (window D H W, overlap, Gaussian weights) of
// the dataset's evaluation samples (whole volumes), Dice accumulated over all
// cases, model.spec.num_classes classes. Switches the module to eval mode.
// Throws std::invalid_argument naming the case when it has no label.
VolumeScores evaluate_volumes(
    const models::Model& model,
    const data::Dataset& dataset,
    const std::array<int64_t, 3>& window,
    double overlap);

} // namespace cakes::eval
