// Command-line description of a dataset, shared by `cakes train`, `eval`,
// `search` and `infer`: one place that turns flags into a Dataset.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/data/transforms.h"
#include "cakes/data/video_datasets.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cakes::cli {

struct DataOptions {
  // Video: a TRN frame-folder list (`folder num_frames label`), a video list
  // (`path label`), a class-per-folder tree of videos, or Something-Something
  // V2's JSON; volumes: an MSD folder holding dataset.json or a folder of
  // image/label NIfTI pairs.
  std::string frames_list, frames_val_list;
  std::string videos_list, videos_val_list;
  std::string videos_dir, videos_val_dir;
  std::string ssv2_list, ssv2_val_list, ssv2_labels;
  std::string msd;
  std::string root;           // frame/video paths are relative to it
  std::string categories;     // category.txt (class / label names)
  int64_t num_classes = 0;    // instead of categories
  std::string frame_template; // "": {:05d}.jpg (TRN lists), {:06d}.jpg (SSv2)
  std::string flip_swaps = "none"; // "none", "ssv1" or pairs "0:1,4:5"
  int64_t frames = 8;              // TSN segments, one frame each
  int64_t size = 224;              // crop size
  int64_t scale = 0; // short side before the centre crop (0: size*8/7)
  std::vector<int64_t> patch{64, 64, 64}; // MSD training patch
  double foreground = 0.33;               // MSD foreground over-sampling
  bool cache = true;                      // MSD: keep decoded volumes in memory
  // Volumes: held-out fraction when dataset.json has no "validation" list
  // (< 0: the default, 0.2), voxel spacing to resample to (empty: native),
  // CT window, z-score region ("": modality default) and, for folders
  // without dataset.json, the modality of each channel.
  double val_fraction = -1;
  std::vector<double> spacing;
  std::vector<double> ct_window;
  std::string zscore;
  std::string modality;
};

void add_data_options(CLI::App* cmd, DataOptions& options);

struct DatasetHandle {
  std::shared_ptr<data::Dataset> dataset;
  int64_t num_classes = 0;
  bool volumetric = false; // segmentation (targets are label volumes)
  int64_t in_channels = 3; // volumes: one per modality
  std::vector<std::string> class_names; // empty when only the number is known
};

// The volume intensity options of --ct-window and --zscore; throws
// std::invalid_argument on an empty window.
data::IntensityOptions intensity_options(const DataOptions& options);

// Whether a video validation source (a val list, folder or JSON) is given.
bool has_video_validation(const DataOptions& options);

// "none", "ssv1" or "a:b,c:d"; throws std::invalid_argument otherwise.
data::LabelSwaps parse_flip_swaps(const std::string& text);
// How clips are sampled for these options (training: random segments, crops,
// flips; otherwise centred).
data::ClipOptions clip_options(const DataOptions& options, bool training);

// training: the training source with augmentation; otherwise, for video, the
// validation source (or the training one when none is given) with centred,
// deterministic sampling, its classes those of the training source; for
// volumes, the validation cases (MsdOptions). Throws std::invalid_argument
// when no or several sources are given, or volume options with video data.
DatasetHandle make_dataset(const DataOptions& options, bool training);

} // namespace cakes::cli
