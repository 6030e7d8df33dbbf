// Volume layouts and preprocessing users expect, on files the test writes: a
// folder of NIfTI pairs without dataset.json, MSD tasks with and without a
// "validation" list, resampling to a spacing and back, intensity options.
#include "cakes/data/msd_dataset.h"
#include "cakes/data/resample.h"

#include "test_helpers.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

namespace fs = std::filesystem;
using namespace cakes::data;
using namespace cakes::data::testing;

namespace {

// An oblique affine (a rotation about k plus scaling) so that mixing up rows
// and columns, or i and k, shows.
Volume oblique_like() {
  Volume v;
  const double c = std::cos(0.3), s = std::sin(0.3);
  v.affine = {
      1.2 * c,
      -0.8 * s,
      0,
      -20, //
      1.2 * s,
      0.8 * c,
      0,
      35, //
      0,
      0,
      2.5,
      -7, //
      0,
      0,
      0,
      1};
  v.spacing = {1.2, 0.8, 2.5};
  v.sform_code = 1;
  return v;
}

// Labels 0/1/2: two nested ellipsoids, smooth as organs are.
at::Tensor ellipsoid_labels(int64_t d, int64_t h, int64_t w) {
  const auto i = at::arange(d, at::kFloat).view({d, 1, 1}) / float(d) - 0.5f;
  const auto j = at::arange(h, at::kFloat).view({1, h, 1}) / float(h) - 0.45f;
  const auto k = at::arange(w, at::kFloat).view({1, 1, w}) / float(w) - 0.55f;
  const auto r = (i * i) / 0.12f + (j * j) / 0.08f + (k * k) / 0.1f;
  return (r < 1.0f).to(at::kLong) + (r < 0.3f).to(at::kLong);
}

// Writes an image (labels * 100 + 20 plus a ramp, so it is not piecewise
// constant) and its label volume with the same grid.
void write_pair(
    const std::string& image,
    const std::string& label,
    const at::Tensor& labels,
    const Volume& like) {
  fs::create_directories(fs::path(image).parent_path());
  fs::create_directories(fs::path(label).parent_path());
  write_nifti_labels(image, labels * 100 + 20, like);
  write_nifti_labels(label, labels, like);
}

std::string json_training(int cases, bool validation_list) {
  std::string j =
      R"({"name": "Toy", "modality": {"0": "MRI"}, "labels": {"0": "bg", "1": "organ", "2": "core"}, "training": [)";
  for (int c = 0; c < cases; ++c) {
    j += std::string(c ? ", " : "") + R"({"image": "./imagesTr/case)" +
         std::to_string(c) + R"(.nii.gz", "label": "./labelsTr/case)" +
         std::to_string(c) + R"(.nii.gz"})";
  }
  j += "]";
  if (validation_list) {
    j +=
        R"(, "validation": [{"image": "./imagesTr/extra.nii.gz", "label": "./labelsTr/extra.nii.gz"}])";
  }
  return j + "}";
}

std::vector<std::string> images_of(const MsdDataset& ds) {
  std::vector<std::string> out;
  for (const auto& c : ds.cases()) {
    out.push_back(fs::path(c.image).filename().string());
  }
  return out;
}

} // namespace

TEST(VolumeFolder, PairsMatchedByFileName) {
  TempDir tmp("vol_pairs");
  const Volume like = oblique_like();
  const at::Tensor labels = ellipsoid_labels(12, 10, 8);
  for (const char* name : {"b", "a", "c"}) {
    write_pair(
        tmp / ("pairs/images/" + std::string(name) + ".nii.gz"),
        tmp / ("pairs/labels/" + std::string(name) + ".nii.gz"),
        labels,
        like);
  }
  std::ofstream(tmp / "pairs/images/readme.txt") << "ignored\n";
  MsdOptions o;
  o.root = tmp / "pairs";
  o.training = false;
  o.val_fraction = 0;
  o.num_classes = 3;
  MsdDataset ds(o);
  EXPECT_EQ(
      images_of(ds),
      (std::vector<std::string>{"a.nii.gz", "b.nii.gz", "c.nii.gz"}));
  EXPECT_EQ(ds.cases()[0].label, tmp / "pairs/labels/a.nii.gz");
  EXPECT_EQ(ds.modalities(), std::vector<std::string>{"MRI"});
  EXPECT_EQ(ds.label_names(), (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(ds.split().rule, "none");
  std::mt19937_64 rng(0);
  const Sample s = ds.get(1, rng);
  EXPECT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{1, 12, 10, 8}));
  EXPECT_TRUE(at::equal(s.target, labels));

  // nnU-Net's naming: imagesTr/case_0000.nii.gz with labelsTr/case.nii.gz.
  write_pair(
      tmp / "nnunet/imagesTr/liver_7_0000.nii.gz",
      tmp / "nnunet/labelsTr/liver_7.nii.gz",
      labels,
      like);
  o.root = tmp / "nnunet";
  o.label_names = {"background", "liver", "tumour"};
  o.num_classes = 0;
  MsdDataset nn(o);
  ASSERT_EQ(nn.size(), 1);
  EXPECT_EQ(nn.cases()[0].label, tmp / "nnunet/labelsTr/liver_7.nii.gz");
  EXPECT_EQ(nn.label_names()[1], "liver");
}

TEST(VolumeFolder, BadFoldersAreOneLineErrors) {
  TempDir tmp("vol_pairs_bad");
  const Volume like = oblique_like();
  const at::Tensor labels = ellipsoid_labels(6, 6, 6);
  MsdOptions o;
  o.num_classes = 3;
  const auto expect_error = [&](const std::string& root,
                                const std::string& what) {
    o.root = root;
    std::string msg;
    try {
      MsdDataset d(o);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  fs::create_directories(tmp / "empty");
  expect_error(tmp / "empty", tmp / "empty: neither dataset.json nor images/");
  expect_error(tmp / "nowhere", tmp / "nowhere: no such folder");

  write_pair(
      tmp / "a/images/x.nii.gz", tmp / "a/labels/x.nii.gz", labels, like);
  write_nifti_labels(tmp / "a/images/y.nii.gz", labels, like);
  expect_error(tmp / "a", tmp / "a/images/y.nii.gz: no label of the same name");
  fs::remove(tmp / "a/images/y.nii.gz");
  write_nifti_labels(tmp / "a/labels/z.nii", labels, like);
  expect_error(tmp / "a", tmp / "a/labels/z.nii: no image of the same name");
  fs::remove(tmp / "a/labels/z.nii");
  write_nifti_labels(tmp / "a/labels/x.nii", labels, like);
  expect_error(tmp / "a", "two files for case 'x'");
  fs::remove(tmp / "a/labels/x.nii");

  write_pair(
      tmp / "b/imagesTr/p_0000.nii.gz",
      tmp / "b/labelsTr/p.nii.gz",
      labels,
      like);
  write_nifti_labels(tmp / "b/imagesTr/p_0001.nii.gz", labels, like);
  expect_error(tmp / "b", "p_0001.nii.gz: one file per channel");

  o.num_classes = 0;
  expect_error(tmp / "a", "the label names or the number of classes");
  o.num_classes = 2; // the ellipsoids have labels 0..2
  o.root = tmp / "a";
  o.training = false;
  MsdDataset ds(o);
  std::mt19937_64 rng(0);
  EXPECT_NE(
      error_of([&] {
        ds.get(0, rng);
      }).find(tmp / "a/labels/x.nii.gz: label value 2 outside the 2 labels"),
      std::string::npos);
  // Two channels named for a 3-D image.
  o.num_classes = 3;
  o.modalities = {"T1", "T2"};
  MsdDataset two(o);
  EXPECT_NE(
      error_of([&] { two.get(0, rng); }).find("1 channels but 2 modalities"),
      std::string::npos);
  // dataset.json names its own modalities: giving them too is an error.
  std::ofstream(tmp / "a/dataset.json") << json_training(1, false);
  expect_error(tmp / "a", "dataset.json names the modalities and labels");
}

TEST(MsdSplit, ValidationListIsUsedWhenPresent) {
  TempDir tmp("msd_val_list");
  const Volume like = oblique_like();
  const at::Tensor labels = ellipsoid_labels(6, 6, 6);
  for (int c = 0; c < 3; ++c) {
    const std::string n = "case" + std::to_string(c) + ".nii.gz";
    write_pair(tmp / ("imagesTr/" + n), tmp / ("labelsTr/" + n), labels, like);
  }
  write_pair(
      tmp / "imagesTr/extra.nii.gz",
      tmp / "labelsTr/extra.nii.gz",
      labels,
      like);
  std::ofstream(tmp / "dataset.json") << json_training(3, true);
  MsdOptions o;
  o.root = tmp.path();
  o.val_fraction = 0.5; // ignored: the task has its own validation list
  MsdDataset train(o);
  EXPECT_EQ(train.size(), 3);
  EXPECT_EQ(train.split().rule, "validation list");
  ASSERT_EQ(train.split().validation.size(), 1u);
  EXPECT_EQ(train.split().validation[0], tmp / "imagesTr/extra.nii.gz");
  o.split = "validation";
  MsdDataset val(o);
  EXPECT_EQ(images_of(val), std::vector<std::string>{"extra.nii.gz"});
  EXPECT_EQ(val.cases()[0].label, tmp / "labelsTr/extra.nii.gz");
  EXPECT_NE(val.describe().find("'validation' list"), std::string::npos);

  // An empty "validation" list is no list: the fraction applies.
  nlohmann::json j = nlohmann::json::parse(json_training(3, false));
  j["validation"] = nlohmann::json::array();
  std::ofstream(tmp / "dataset.json") << j.dump();
  MsdDataset held(o);
  EXPECT_EQ(held.split().rule, "val-fraction");
  EXPECT_EQ(held.size(), 2); // round(0.5 * 3) = 2 of 3 cases
}

TEST(MsdSplit, ValFractionHoldsOutTheSameCasesWhateverTheListOrder) {
  TempDir tmp("msd_val_fraction");
  const int n = 10;
  std::ofstream(tmp / "dataset.json") << json_training(n, false);
  MsdOptions o;
  o.root = tmp.path();
  o.val_fraction = 0.2;
  MsdDataset train(o);
  o.split = "validation";
  MsdDataset val(o);
  EXPECT_EQ(train.split().rule, "val-fraction");
  EXPECT_EQ(val.size(), 2);
  EXPECT_EQ(train.size(), 8);
  std::set<std::string> all;
  for (const auto& c : train.cases()) {
    all.insert(c.image);
  }
  for (const auto& c : val.cases()) {
    EXPECT_EQ(all.count(c.image), 0u) << c.image << " in both";
    all.insert(c.image);
  }
  EXPECT_EQ(all.size(), size_t(n));
  std::vector<std::string> chosen = val.split().validation;
  EXPECT_EQ(chosen, train.split().validation);
  for (size_t i = 0; i < chosen.size(); ++i) {
    EXPECT_EQ(chosen[i], val.cases()[i].image);
  }

  // The same cases from a reversed list (the choice hashes file names) ...
  nlohmann::json j = nlohmann::json::parse(json_training(n, false));
  std::reverse(j["training"].begin(), j["training"].end());
  std::ofstream(tmp / "dataset.json") << j.dump();
  MsdDataset reversed(o);
  std::set<std::string> a(chosen.begin(), chosen.end());
  std::set<std::string> b(
      reversed.split().validation.begin(), reversed.split().validation.end());
  EXPECT_EQ(a, b);
  // ... and other cases from another seed (for this seed and these names).
  o.split_seed = 1;
  MsdDataset reseeded(o);
  std::set<std::string> c(
      reseeded.split().validation.begin(), reseeded.split().validation.end());
  EXPECT_NE(a, c);
  EXPECT_EQ(c.size(), 2u);

  // No fraction, or too few cases: nothing held out, validation = training.
  o.val_fraction = 0;
  MsdDataset none(o);
  EXPECT_EQ(none.split().rule, "none");
  EXPECT_EQ(none.size(), n);
  std::ofstream(tmp / "dataset.json") << json_training(2, false);
  o.val_fraction = 0.2; // round(0.4) = 0 cases
  EXPECT_EQ(MsdDataset(o).split().rule, "none");
  o.val_fraction = 0.9; // round(1.8) = 2, but one case stays for training
  EXPECT_EQ(MsdDataset(o).size(), 1);
  o.val_fraction = 1.0;
  EXPECT_THROW(MsdDataset{o}, std::invalid_argument);
}

TEST(Resample, GridKeepsWorldPositions) {
  // A volume whose values are the world x, y and z of each voxel: trilinear
  // interpolation reproduces linear functions exactly, so on the new grid
  // every interior voxel must hold the world position its new affine gives.
  const Volume like = oblique_like();
  const int64_t d = 20, h = 24, w = 12;
  const auto i = at::arange(d, at::kDouble).view({d, 1, 1}).expand({d, h, w});
  const auto j = at::arange(h, at::kDouble).view({1, h, 1}).expand({d, h, w});
  const auto k = at::arange(w, at::kDouble).view({1, 1, w}).expand({d, h, w});
  std::vector<at::Tensor> world;
  for (int r = 0; r < 3; ++r) {
    const double* a = like.affine.data() + 4 * r;
    world.push_back((a[0] * i + a[1] * j + a[2] * k + a[3]).to(at::kFloat));
  }
  const std::array<double, 3> target{0.7, 1.1, 4.0};
  const Grid g = resampled_grid({d, h, w}, like.affine, target);
  EXPECT_EQ(g.shape, (std::array<int64_t, 3>{34, 17, 8})); // 20*1.2/0.7, ...
  const auto realised = affine_spacing(g.affine);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(realised[a], target[a], target[a] * 0.5 / g.shape[a] * 2);
  }
  const at::Tensor out = resample_trilinear(at::stack(world), g.shape);
  ASSERT_EQ(out.sizes().vec(), (std::vector<int64_t>{3, 34, 17, 8}));
  int64_t checked = 0;
  for (int64_t a = 0; a < g.shape[0]; ++a) {
    for (int64_t b = 0; b < g.shape[1]; ++b) {
      for (int64_t c = 0; c < g.shape[2]; ++c) {
        // Only voxels whose source position lies inside the old grid
        // (outside it, interpolation clamps to the border).
        const double src[3] = {
            (a + 0.5) * d / g.shape[0] - 0.5,
            (b + 0.5) * h / g.shape[1] - 0.5,
            (c + 0.5) * w / g.shape[2] - 0.5};
        if (src[0] < 0 || src[1] < 0 || src[2] < 0 || src[0] > d - 1 ||
            src[1] > h - 1 || src[2] > w - 1) {
          continue;
        }
        for (int r = 0; r < 3; ++r) {
          const double* m = g.affine.data() + 4 * r;
          const double expected = m[0] * a + m[1] * b + m[2] * c + m[3];
          ASSERT_NEAR(out[r][a][b][c].item<double>(), expected, 1e-3)
              << "row " << r << " at " << a << "," << b << "," << c;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 34 * 17 * 8 / 2);

  EXPECT_THROW(
      resampled_grid({d, h, w}, like.affine, {1, 0, 1}), std::invalid_argument);
  const std::string msg = error_of([&] {
    resampled_grid({d, h, w}, like.affine, {0.001, 0.001, 0.001});
  });
  EXPECT_NE(msg.find("over 2^30"), std::string::npos) << msg;
}

TEST(Resample, LabelsRoundTripAndPredictionsLandOnTheInputGrid) {
  TempDir tmp("resample_roundtrip");
  const Volume like = oblique_like();
  const at::Tensor labels = ellipsoid_labels(40, 36, 20);
  write_pair(tmp / "images/a.nii.gz", tmp / "labels/a.nii.gz", labels, like);
  const Volume original = read_nifti(tmp / "labels/a.nii.gz");

  // Coarser along i and j, finer along k; there and back by nearest voxel.
  for (const std::array<double, 3> spacing :
       {std::array<double, 3>{1.5, 1.0, 1.7},
        std::array<double, 3>{0.9, 0.6, 3.1}}) {
    const Volume there = resample_volume(original, spacing, /*labels=*/true);
    EXPECT_EQ(there.data.scalar_type(), original.data.scalar_type());
    const at::Tensor back = resample_nearest(
        there.data, {labels.size(0), labels.size(1), labels.size(2)});
    const double kept =
        back.eq(original.data).to(at::kDouble).mean().item<double>();
    EXPECT_GE(kept, 0.99) << spacing[0] << " " << spacing[1] << " "
                          << spacing[2];
    // Nearest never invents values (the labels are 0, 1 and 2).
    EXPECT_TRUE(at::isin(there.data, at::arange(3, there.data.options()))
                    .all()
                    .item<bool>());
  }

  // Through the dataset: a case resampled to 1.5 x 1.0 x 1.7, a
  // "prediction" made on that grid, written back on the input's grid.
  MsdOptions o;
  o.root = tmp.path();
  o.training = false;
  o.num_classes = 3;
  o.spacing = {1.5, 1.0, 1.7};
  MsdDataset ds(o);
  const Sample s = ds.load_case(0);
  const Grid g = resampled_grid({40, 36, 20}, like.affine, {1.5, 1.0, 1.7});
  EXPECT_EQ(s.input.sizes().vec(), (std::vector<int64_t>{1, 32, 29, 29}));
  EXPECT_EQ(s.target.sizes().vec(), (std::vector<int64_t>{32, 29, 29}));
  EXPECT_EQ(g.shape, (std::array<int64_t, 3>{32, 29, 29}));
  EXPECT_TRUE(at::isin(s.target, at::arange(3)).all().item<bool>());
  const at::Tensor prediction = (s.input[0] > 0).to(at::kLong) + s.target.eq(2);
  const std::string out = tmp / "pred.nii.gz";
  const Volume image = ds.read_image(0);
  write_labels_on_grid_of(out, prediction, image);
  const Volume written = read_nifti(out);
  EXPECT_EQ(written.data.sizes(), image.data.sizes());
  for (int e = 0; e < 16; ++e) {
    EXPECT_NEAR(written.affine[e], image.affine[e], 1e-4) << "affine " << e;
  }
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(written.spacing[a], image.spacing[a], 1e-6);
  }
  // The core written back covers the core of the input.
  const double agree =
      written.data.eq(2).eq(labels.eq(2)).to(at::kDouble).mean().item<double>();
  EXPECT_GE(agree, 0.99);
}

TEST(Intensity, CtWindowAndZScoreRegions) {
  const at::Tensor hu =
      at::tensor({-2000.f, -1000.f, 0.f, 500.f, 3000.f}).view({1, 5, 1, 1});
  IntensityOptions o;
  at::Tensor x = normalize_intensities(hu, {"CT"}, o);
  EXPECT_TRUE(
      at::allclose(x.flatten(), at::tensor({0.f, 0.f, 0.5f, 0.75f, 1.f})));
  o.ct_lo = -100;
  o.ct_hi = 300;
  x = normalize_intensities(hu, {"CT"}, o);
  EXPECT_TRUE(
      at::allclose(x.flatten(), at::tensor({0.f, 0.f, 0.25f, 1.f, 1.f})));

  // z-score over all voxels, CT clipped to the window first.
  o.zscore_set = true;
  o.zscore = ZScoreRegion::All;
  x = normalize_intensities(hu, {"CT"}, o);
  const at::Tensor clipped = hu.clamp(-100, 300).to(at::kDouble);
  const at::Tensor want =
      (clipped - clipped.mean()) / clipped.std(/*unbiased=*/false);
  EXPECT_TRUE(at::allclose(x.to(at::kDouble), want, 1e-5, 1e-5));

  // MRI: default and nonzero ignore the zero background; all counts it.
  const at::Tensor mri =
      at::tensor({0.f, 0.f, 10.f, 20.f, 30.f}).view({1, 5, 1, 1});
  IntensityOptions m;
  x = normalize_intensities(mri, {"MRI"}, m).flatten();
  EXPECT_FLOAT_EQ(x[0].item<float>(), 0.f);
  EXPECT_NEAR(x[3].item<float>(), 0.f, 1e-6);
  EXPECT_NEAR(x.narrow(0, 2, 3).std(false).item<float>(), 1.f, 1e-5);
  m.zscore_set = true;
  m.zscore = ZScoreRegion::All;
  x = normalize_intensities(mri, {"MRI"}, m).flatten();
  EXPECT_NEAR(x.mean().item<float>(), 0.f, 1e-6);
  EXPECT_NEAR(x.std(false).item<float>(), 1.f, 1e-5);
  EXPECT_LT(x[0].item<float>(), -0.5f);

  o.ct_hi = o.ct_lo;
  EXPECT_THROW(normalize_intensities(hu, {"CT"}, o), std::invalid_argument);
  EXPECT_THROW(
      normalize_intensities(hu, {"CT", "MRI"}, m), std::invalid_argument);
}
