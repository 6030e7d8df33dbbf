// Evaluation of a model on a dataset, shared by `cakes eval`, validation during
// training and the search: top-1/top-5 over video clips, per-class Dice over
// volumes by sliding-window inference.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/eval/metrics.h"
#include "cakes/models/model.h"

#include <array>
#include <cstdint>
#include <functional>
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
// batch is not positive. `on_batch`, when given, is called after each batch
// with the videos done and their total (progress of a long evaluation).
VideoScores evaluate_video(
    const models::Model& model,
    const data::Dataset& dataset,
    int64_t clips = 1,
    int64_t batch = 8,
    const std::function<void(int64_t done, int64_t total)>& on_batch = {});

struct VolumeScores {
  std::vector<std::string> class_names; // the dataset's, else "0", "1", ...
  std::vector<double> dice;   // per class; NaN where the class is absent
  double mean_foreground = 0; // mean over present classes except class 0
  int64_t cases = 0;
  DiceCounts counts; // what the Dice figures come from (sums over ranks)
};

// The scores of Dice counts accumulated over `cases` cases; class names
// beyond `class_names` are "2", "3", ...
VolumeScores volume_scores(
    const DiceCounts& counts,
    std::vector<std::string> class_names,
    int64_t cases);

// One case done (progress of evaluate_volumes).
struct CaseResult {
  int64_t index = 0, total = 0; // case index in the dataset, and the cases
  std::vector<double> dice;     // this case alone; NaN where absent
  double mean_foreground = 0;   // NaN when it has no foreground class
  double seconds = 0;           // its load and sliding window
};

// Sliding-window labels per case (window D H W, overlap, Gaussian weights) of
// the dataset's evaluation samples (whole volumes), Dice accumulated over all
// cases, model.spec.num_classes classes. Switches the module to eval mode.
// Throws std::invalid_argument naming the case when it has no label.
// `on_case`, when given, is called after each case.
VolumeScores evaluate_volumes(
    const models::Model& model,
    const data::Dataset& dataset,
    const std::array<int64_t, 3>& window,
    double overlap,
    const std::function<void(const CaseResult&)>& on_case = {});

} // namespace cakes::eval
