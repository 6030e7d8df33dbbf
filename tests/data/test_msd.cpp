// A Medical Segmentation Decathlon layout built at test time around a real
// NIfTI sample (nibabel's anatomical.nii, big-endian int16).
#include "cakes/data/msd_dataset.h"

#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace cakes::data;
using namespace cakes::data::testing;

namespace {

const std::string kImage =
    "/usr/lib/python3/dist-packages/nibabel/tests/data/anatomical.nii";

// <root>/imagesTr/case.nii (a copy of the sample), <root>/labelsTr/case.nii.gz
// (3 classes by intensity), and dataset.json listing `num_labels` labels.
void write_msd(const TempDir& tmp, int num_labels) {
  fs::create_directories(tmp / "imagesTr");
  fs::create_directories(tmp / "labelsTr");
  fs::copy_file(
      kImage, tmp / "imagesTr/case.nii", fs::copy_options::overwrite_existing);
  const Volume image = read_nifti(kImage);
  const double m = image.data.mean().item<double>();
  at::Tensor labels =
      (image.data > m).to(at::kLong) + (image.data > 2 * m).to(at::kLong);
  write_nifti_labels(tmp / "labelsTr/case.nii.gz", labels, image);
  std::ofstream json(tmp / "dataset.json");
  json << R"({"name": "Toy", "modality": {"0": "MRI"}, "labels": {)";
  for (int k = 0; k < num_labels; ++k) {
    json << (k ? ", " : "") << "\"" << k << "\": \"class" << k << "\"";
  }
  json
      << R"(}, "training": [{"image": "./imagesTr/case.nii", "label": "./labelsTr/case.nii.gz"}],
            "test": ["./imagesTr/case.nii"]})";
}

} // namespace

TEST(MsdDataset, EvaluationAndTrainingSamples) {
  TempDir tmp("msd_ok");
  write_msd(tmp, 3);
  MsdOptions o;
  o.root = tmp.path();
  o.training = false;
  MsdDataset eval(o);
  ASSERT_EQ(eval.size(), 1);
  EXPECT_EQ(eval.num_classes(), 3);
  EXPECT_EQ(eval.modalities(), std::vector<std::string>{"MRI"});
  std::mt19937_64 rng(0);
  Sample s = eval.get(0, rng);
  const Volume image = read_nifti(kImage);
  EXPECT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{1, 33, 41, 25}));
  EXPECT_EQ(s.target.sizes().vec(), (std::vector<int64_t>{33, 41, 25}));
  EXPECT_EQ(s.target.scalar_type(), at::kLong);
  EXPECT_EQ(s.target.max().item<int64_t>(), 2);
  // MRI: z-score over the non-zero voxels.
  at::Tensor fg = image.data != 0;
  EXPECT_NEAR(s.input[0].masked_select(fg).mean().item<double>(), 0.0, 1e-3);
  EXPECT_NEAR(
      s.input[0].masked_select(fg).std(false).item<double>(), 1.0, 1e-3);

  o.training = true;
  o.patch.size = {16, 16, 16};
  o.patch.foreground_fraction = 1.0;
  MsdDataset train(o);
  Sample p = train.get(0, rng);
  EXPECT_EQ(p.input.sizes().vec(), (std::vector<int64_t>{1, 16, 16, 16}));
  EXPECT_EQ(p.target.sizes().vec(), (std::vector<int64_t>{16, 16, 16}));
  EXPECT_GT(p.target.max().item<int64_t>(), 0);

  // A cached dataset gives the same samples for the same seeds, and keeps
  // working once the files are gone.
  o.cache = true;
  MsdDataset cached(o);
  std::mt19937_64 r1(5), r2(5);
  Sample first = cached.get(0, r1);
  fs::remove(tmp / "imagesTr/case.nii");
  Sample again = cached.get(0, r2);
  EXPECT_TRUE(at::equal(first.input, again.input));
  EXPECT_TRUE(at::equal(first.target, again.target));
  EXPECT_NE(
      error_of([&] { train.get(0, rng); }).find("case.nii"), std::string::npos);
  fs::copy_file(kImage, tmp / "imagesTr/case.nii");

  o.cache = false;
  o.split = "test";
  o.training = false;
  MsdDataset test(o);
  EXPECT_FALSE(test.get(0, rng).target.defined());
}

TEST(MsdDataset, LabelOutOfRangeIsAnErrorNamingTheLabelFile) {
  TempDir tmp("msd_range");
  write_msd(tmp, 2); // labels go up to 2 but only 0..1 are declared
  MsdOptions o;
  o.root = tmp.path();
  o.training = false;
  MsdDataset ds(o);
  std::mt19937_64 rng(0);
  const std::string msg = error_of([&] { ds.get(0, rng); });
  EXPECT_NE(msg.find("labelsTr/case.nii.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("label value 2"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST(MsdDataset, MalformedDatasetJsonIsAnError) {
  TempDir tmp("msd_json");
  std::ofstream(tmp / "dataset.json") << "{ not json";
  MsdOptions o;
  o.root = tmp.path();
  const std::string msg = error_of([&] { MsdDataset d(o); });
  EXPECT_NE(msg.find(tmp / "dataset.json"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;

  std::ofstream(tmp / "dataset.json")
      << R"({"modality": {"0": "CT"}, "labels": {"0": "bg"}})";
  EXPECT_NE(
      error_of([&] { MsdDataset d(o); }).find("training"), std::string::npos);
}
