// Segmentation volumes (docs/CAKES.md §7): a Medical Segmentation Decathlon
// task (dataset.json + NIfTI), or a plain folder of image/label NIfTI pairs
// matched by file name.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/data/nifti.h"
#include "cakes/data/transforms.h"

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace cakes::data {

struct MsdOptions {
  // A folder holding dataset.json, or, without one, a folder of pairs:
  // images/ + labels/ (or imagesTr/ + labelsTr/), an image matched to the
  // label of the same file name (an nnU-Net channel suffix _0000 on the image
  // is ignored); imagesTs/ is the test split there.
  std::string root;
  // "training", "validation" (held-out cases, see below) or "test" (images
  // without labels).
  std::string split = "training";
  // The validation cases: dataset.json's "validation" list when it has a
  // non-empty one
  // (MONAI's load_decathlon_datalist convention); otherwise
  // round(val_fraction * n) of the n training cases, at most n - 1, chosen
  // by a hash of (split_seed, image file name), so the choice is the same on
  // every machine and does not depend on the list order. The training split
  // is then the other cases. A fraction that rounds to no case holds none out
  // and "validation" is the training cases (split().rule says so).
  double val_fraction = 0.2;
  uint64_t split_seed = 0;
  // Only without dataset.json: the modality of each image channel (one per
  // channel of a 4-D image), and the label names (index = value) or, instead,
  // their number. Given with a dataset.json, they are an error.
  std::vector<std::string> modalities;
  std::vector<std::string> label_names;
  int64_t num_classes = 0;
  // Training: a random patch (foreground over-sampled) and random flips.
  // Evaluation: the whole volume.
  bool training = true;
  PatchOptions patch;
  double flip_probability = 0.5;
  IntensityOptions intensity;
  // Voxel size (i, j, k) to resample every case to; empty: each case's own
  // grid. Images are normalised, then resampled trilinearly; labels by
  // nearest voxel (resample.h).
  std::vector<double> spacing;
  // Keep each case's normalised volume and labels in memory after the first
  // read (decompressing a .nii.gz costs far more than cutting a patch).
  // Thread-safe; costs the size of the split in float32 + int64.
  bool cache = false;
};

struct MsdCase {
  std::string image; // resolved path
  std::string label; // resolved path; empty in the test split
};

// How the validation cases were chosen, for logs and checkpoints.
struct VolumeSplit {
  // "validation list": dataset.json's own; "val-fraction": held out by hash;
  // "none": nothing held out (validation = the training cases);
  // "test list": the split is the test images.
  std::string rule;
  double val_fraction = 0;
  uint64_t seed = 0;
  std::vector<std::string> validation; // image paths, in case order
};

// A whole image as the network's (C, D, H, W) float32 input: channels from
// a 4-D image's 4th axis, one per modality, normalised per `intensity`, then
// resampled to voxel size `spacing` (i, j, k) when non-empty (what training
// on MsdOptions with these fields saw). Throws std::runtime_error naming the
// file when it is not 3-D or 4-D or its channels are not one per modality
// (`modality_source` says where the modalities came from).
at::Tensor network_input(
    const Volume& image,
    const std::vector<std::string>& modalities,
    const IntensityOptions& intensity,
    const std::vector<double>& spacing,
    const std::string& modality_source);

class MsdDataset : public Dataset {
public:
  // Parses <root>/dataset.json or lists the pair folders. Throws
  // std::runtime_error naming the file or folder when dataset.json is missing
  // and there are no pair folders, is not JSON, lacks the split / labels /
  // modality fields, or an image has no label (or a label no image);
  // std::invalid_argument for inconsistent options.
  explicit MsdDataset(MsdOptions options);
  int64_t size() const override;
  // input (C, D, H, W) float32 with (D, H, W) the NIfTI (i, j, k) axes
  // (resampled to `spacing` when set) and C the modalities (a 4-D image's 4th
  // axis); target (D, H, W) int64 (undefined in the test split). A label
  // volume whose shape differs from its image, or with a value outside the
  // labels, throws naming the label file.
  Sample get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;

  // The image with its metadata as in the file, for writing a prediction
  // aligned with it (write_labels_on_grid_of in resample.h).
  Volume read_image(int64_t index) const;
  // The network's (C, D, H, W) input for a whole image: normalised, then
  // resampled to `spacing` when set.
  at::Tensor normalized_input(const Volume& image) const;

  const std::vector<MsdCase>& cases() const {
    return cases_;
  }
  const std::vector<std::string>& modalities() const {
    return modalities_;
  }
  const std::vector<std::string>& label_names() const {
    return label_names_;
  }
  std::vector<std::string> class_names() const override {
    return label_names_;
  }
  int64_t num_classes() const override {
    return static_cast<int64_t>(label_names_.size());
  }
  const std::string& name() const {
    return name_;
  }
  const VolumeSplit& split() const {
    return split_;
  }

  // The whole normalised (and resampled) case, before patches and flips
  // (evaluation's input). Always reads the files (no cache).
  Sample load_case(int64_t index) const;

private:
  void read_dataset_json(const std::string& file);
  void scan_pair_folders();
  void hold_out(std::vector<MsdCase> training);

  MsdOptions options_;
  std::string name_;
  std::string source_; // dataset.json or the pair folder, for messages
  std::vector<std::string> modalities_;
  std::vector<std::string> label_names_; // index = label value
  std::vector<MsdCase> cases_;
  VolumeSplit split_;
  mutable std::mutex cache_mutex_;
  mutable std::vector<Sample> cache_; // undefined input: not loaded yet
};

} // namespace cakes::data
