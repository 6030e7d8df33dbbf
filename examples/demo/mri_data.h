// The demo's MRI task, made from the T1 volume of Debian's
// insighttoolkit5-examples (README, Demo): one hemisphere as a Medical
// Segmentation Decathlon folder.
#pragma once

#include <cstdint>
#include <string>

namespace cakes::demo {

// Where insighttoolkit5-examples installs its data.
extern const char* const kItkData;

// One hemisphere (x < 64 when `left`, else x >= 64) of the 128x128x62 T1,
// cropped/padded to 64x96x64 (multiples of 16), with labels 0 = outside the
// brain, 1..3 = the k-means tissue classes 4, 5, 6 inside the brain, written
// to `dir` as imagesTr/, labelsTr/ and a dataset.json listing the volume
// `copies` times (so that an epoch is that many random patches). Throws
// std::runtime_error when the ITK volumes are missing or differ in shape.
void write_mri_split(const std::string& dir, bool left, int64_t copies);
// Both hemispheres in one folder: the left one (imagesTr/left.nii.gz) listed
// `copies` times under "training", the right one (right.nii.gz) under
// "validation", for training with validation (`cakes-demo --mri-task DIR`).
void write_mri_task(const std::string& dir, int64_t copies);

} // namespace cakes::demo
