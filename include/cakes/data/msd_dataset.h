// Medical Segmentation Decathlon tasks (docs/CAKES.md §7): dataset.json +
// NIfTI.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/data/nifti.h"
#include "cakes/data/transforms.h"

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace cakes::data {

struct MsdOptions {
  std::string root;               // the folder holding dataset.json
  std::string split = "training"; // or "test" (images without labels)
  // Training: a random patch (foreground over-sampled) and random flips.
  // Evaluation: the whole volume.
  bool training = true;
  PatchOptions patch;
  double flip_probability = 0.5;
  // Intensity per modality channel: "CT" channels are clipped to the window
  // [ct_lo, ct_hi] HU and mapped to [0, 1]; other modalities (MRI) get a
  // z-score over their non-zero voxels.
  double ct_lo = -1000.0;
  double ct_hi = 1000.0;
  // Keep each case's normalised volume and labels in memory after the first
  // read (decompressing a .nii.gz costs far more than cutting a patch).
  // Thread-safe; costs the size of the split in float32 + int64.
  bool cache = false;
};

struct MsdCase {
  std::string image; // resolved path
  std::string label; // resolved path; empty in the test split
};

class MsdDataset : public Dataset {
public:
  // Parses <root>/dataset.json. Throws std::runtime_error naming the file when
  // it is missing, not JSON, or lacks the split / labels / modality fields.
  explicit MsdDataset(MsdOptions options);
  int64_t size() const override;
  // input (C, D, H, W) float32 with (D, H, W) the NIfTI (i, j, k) axes and C
  // the modalities (a 4-D image's 4th axis); target (D, H, W) int64 (undefined
  // in the test split). A label volume whose shape differs from its image, or
  // with a value not listed in `labels`, throws naming the label file.
  Sample get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;

  // The image with its metadata, for writing a prediction aligned with it.
  Volume read_image(int64_t index) const;
  // The normalised (C, D, H, W) input of a whole image (what evaluation sees).
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

  // The whole normalised case, before patches and flips (evaluation's input).
  // Always reads the files (no cache).
  Sample load_case(int64_t index) const;

private:
  MsdOptions options_;
  std::string name_;
  std::vector<std::string> modalities_;
  std::vector<std::string> label_names_; // index = label value
  std::vector<MsdCase> cases_;
  mutable std::mutex cache_mutex_;
  mutable std::vector<Sample> cache_; // undefined input: not loaded yet
};

} // namespace cakes::data
