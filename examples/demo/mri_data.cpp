#include "mri_data.h"

#include "cakes/data/nifti.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cakes::demo {

const char* const kItkData =
    "/usr/share/doc/insighttoolkit5-examples/examples/Data/";

// The input is the T1 inside the brain region (zero elsewhere), i.e.
// skull-stripped as brain-tissue segmentation usually starts: the task is
// tissue, not skull stripping.
namespace {

// One hemisphere's image and labels as imagesTr/<name> and labelsTr/<name>.
void write_hemisphere(
    const std::string& dir, bool left, const std::string& name) {
  const auto t1 =
      data::read_nifti(std::string(kItkData) + "KmeansTest_T1UCharRaw.nii.gz");
  const auto brain = data::read_nifti(
      std::string(kItkData) + "KmeansTest_T1RawSkullStrip.nii.gz");
  const auto km = data::read_nifti(
      std::string(kItkData) + "KmeansTest_T1KmeansPrelimSegmentation.nii.gz");
  if (t1.data.sizes() != brain.data.sizes() ||
      t1.data.sizes() != km.data.sizes() || t1.data.dim() != 3)
    throw std::runtime_error(
        "demo: the ITK T1 example volumes differ in shape");
  auto labels = torch::zeros(km.data.sizes(), torch::kLong);
  const auto inside = brain.data > 0;
  for (int64_t k = 4; k <= 6; ++k)
    labels.masked_fill_(inside.logical_and(km.data == double(k)), k - 3);
  // Crop: x half, y 16..112 (the brain spans 25..94), z padded 62 -> 64.
  const int64_t x0 = left ? 0 : t1.data.size(0) - 64, y0 = 16;
  auto crop = [&](const at::Tensor& v) {
    auto c = v.narrow(0, x0, 64).narrow(1, y0, 96);
    return torch::constant_pad_nd(c, {0, 64 - c.size(2)}, 0);
  };
  data::Volume like = t1;
  // The crop's voxel (0,0,0) is the original's (x0, y0, 0): move the origin.
  for (int r = 0; r < 3; ++r)
    like.affine[r * 4 + 3] +=
        like.affine[r * 4 + 0] * x0 + like.affine[r * 4 + 1] * y0;
  fs::create_directories(fs::path(dir) / "imagesTr");
  fs::create_directories(fs::path(dir) / "labelsTr");
  // The T1 is 8-bit, so the int16 label writer stores it exactly.
  const auto stripped =
      t1.data.round().to(torch::kLong) * inside.to(torch::kLong);
  data::write_nifti_labels(dir + "/imagesTr/" + name, crop(stripped), like);
  data::write_nifti_labels(dir + "/labelsTr/" + name, crop(labels), like);
}

nlohmann::ordered_json case_of(const std::string& name) {
  return {{"image", "./imagesTr/" + name}, {"label", "./labelsTr/" + name}};
}

void write_dataset_json(
    const std::string& dir,
    const std::string& title,
    const std::string& train_case,
    int64_t copies,
    const std::string& validation_case) {
  nlohmann::ordered_json j;
  j["name"] = title;
  j["modality"] = {{"0", "MRI"}};
  j["labels"] = {
      {"0", "background"},
      {"1", "tissue_k4"},
      {"2", "tissue_k5"},
      {"3", "tissue_k6"}};
  // One volume; listing it several times makes an epoch several random patches.
  for (int64_t i = 0; i < copies; ++i)
    j["training"].push_back(case_of(train_case));
  j["numTraining"] = copies;
  if (!validation_case.empty())
    j["validation"].push_back(case_of(validation_case));
  std::ofstream(dir + "/dataset.json") << j.dump(1) << "\n";
}

} // namespace

void write_mri_split(const std::string& dir, bool left, int64_t copies) {
  write_hemisphere(dir, left, "t1.nii.gz");
  write_dataset_json(
      dir,
      std::string("ITK T1 ") + (left ? "left" : "right") + " hemisphere",
      "t1.nii.gz",
      copies,
      "");
}

void write_mri_task(const std::string& dir, int64_t copies) {
  write_hemisphere(dir, /*left=*/true, "left.nii.gz");
  write_hemisphere(dir, /*left=*/false, "right.nii.gz");
  write_dataset_json(
      dir,
      "ITK T1, left hemisphere to train, right to validate",
      "left.nii.gz",
      copies,
      "right.nii.gz");
}

} // namespace cakes::demo
