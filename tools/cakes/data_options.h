// Command-line description of a dataset, shared by `cakes train`, `eval`,
// `search` and `infer`: one place that turns flags into a Dataset.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/data/video_datasets.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cakes::cli {

struct DataOptions {
  // Video: a TRN frame-folder list (`folder num_frames label`) or a video list
  // (`path label`); volumes: an MSD folder holding dataset.json.
  std::string frames_list, frames_val_list;
  std::string videos_list, videos_val_list;
  std::string msd;
  std::string root;        // frame/video paths are relative to it
  std::string categories;  // category.txt (number of classes)
  int64_t num_classes = 0; // instead of categories
  std::string frame_template = "{:05d}.jpg";
  std::string flip_swaps = "none"; // "none", "ssv1" or pairs "0:1,4:5"
  int64_t frames = 8;              // TSN segments, one frame each
  int64_t size = 224;              // crop size
  int64_t scale = 0; // short side before the centre crop (0: size*8/7)
  std::vector<int64_t> patch{64, 64, 64}; // MSD training patch
  double foreground = 0.33;               // MSD foreground over-sampling
  bool cache = true;                      // MSD: keep decoded volumes in memory
};

void add_data_options(CLI::App* cmd, DataOptions& options);

struct DatasetHandle {
  std::shared_ptr<data::Dataset> dataset;
  int64_t num_classes = 0;
  bool volumetric = false; // segmentation (targets are label volumes)
  int64_t in_channels = 3; // volumes: one per modality
};

// "none", "ssv1" or "a:b,c:d"; throws std::invalid_argument otherwise.
data::LabelSwaps parse_flip_swaps(const std::string& text);
// How clips are sampled for these options (training: random segments, crops,
// flips; otherwise centred).
data::ClipOptions clip_options(const DataOptions& options, bool training);

// training: the training list with augmentation; otherwise the validation list
// (or the training list when none is given) with centred, deterministic
// sampling. Throws std::invalid_argument when no or several sources are given.
DatasetHandle make_dataset(const DataOptions& options, bool training);

} // namespace cakes::cli
