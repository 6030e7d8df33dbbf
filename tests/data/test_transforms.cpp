// Sampling and transforms: tables of (arguments, expected) and statistical
// checks with fixed seeds.
#include "cakes/data/transforms.h"
#include "cakes/data/video_datasets.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace cakes::data;

TEST(TsnSampling, CentreIndicesInEvaluation) {
  struct Case {
    int64_t frames, segments, length;
    std::vector<int64_t> expected;
  };
  const std::vector<Case> cases{
      {30, 3, 1, {5, 15, 25}},  // tick 10: centres
      {10, 4, 1, {1, 3, 6, 8}}, // tick 2.5: int(1.25), int(3.75), ...
      {20,
       2,
       3,
       {4, 5, 6, 13, 14, 15}}, // tick (20-3+1)/2 = 9: 4, 13, runs of 3
      {5, 8, 1, {0, 0, 1, 1, 2, 3, 3, 4}}, // shorter than the segments: spread
      {1, 3, 2, {0, 0, 0, 0, 0, 0}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(
        tsn_segment_indices(c.frames, c.segments, c.length, nullptr),
        c.expected)
        << c.frames << " frames, " << c.segments << " segments, " << c.length;
  }
  EXPECT_THROW(tsn_segment_indices(0, 3, 1, nullptr), std::invalid_argument);
}

TEST(TsnSampling, RandomOffsetsStayInTheirSegmentAndCoverIt) {
  std::mt19937_64 rng(7);
  std::vector<std::vector<int>> seen(4, std::vector<int>(10, 0));
  for (int draw = 0; draw < 400; ++draw) {
    std::vector<int64_t> idx = tsn_segment_indices(40, 4, 1, &rng);
    ASSERT_EQ(idx.size(), 4u);
    for (int s = 0; s < 4; ++s) {
      ASSERT_GE(idx[s], 10 * s);
      ASSERT_LT(idx[s], 10 * (s + 1));
      ++seen[s][idx[s] - 10 * s];
    }
  }
  for (int s = 0; s < 4; ++s)
    for (int o = 0; o < 10; ++o)
      EXPECT_GT(seen[s][o], 15)
          << "segment " << s << " offset " << o; // ~40 expected
}

TEST(Flip, LabelSwapTable) {
  const LabelSwaps v1 = ssv1_flip_swaps();
  const std::vector<std::pair<int64_t, int64_t>> table{
      {86, 87},
      {87, 86},
      {93, 94},
      {94, 93},
      {166, 167},
      {167, 166},
      {0, 0},
      {88, 88}};
  for (const auto& [in, out] : table) {
    EXPECT_EQ(flipped_label(in, v1), out) << in;
  }
  EXPECT_EQ(flipped_label(86, {}), 86);
  EXPECT_EQ(flipped_label(3, {{3, 9}}), 9);
}

TEST(Flip, TrainingPipelineSwapsTheLabelExactlyWhenItFlips) {
  // Frames whose columns all differ, so a flip is visible; a single crop
  // scale equal to the frame makes the crop the identity.
  at::Tensor frames = at::arange(2 * 8 * 8 * 3, at::kLong)
                          .remainder(251)
                          .to(at::kByte)
                          .view({2, 8, 8, 3});
  ClipOptions o;
  o.num_segments = 2;
  o.crop_size = 8;
  o.crop_scales = {1.0};
  o.mean = {0, 0, 0};
  o.std = {1, 1, 1};
  o.flip_swaps = ssv1_flip_swaps();
  const at::Tensor plain = frames_to_clip(frames);
  std::mt19937_64 rng(11);
  int flips = 0;
  for (int i = 0; i < 200; ++i) {
    Sample s = make_clip_sample(frames, 86, o, rng);
    const bool flipped = at::allclose(s.input, hflip(plain));
    ASSERT_TRUE(flipped || at::allclose(s.input, plain));
    EXPECT_EQ(s.target.item<int64_t>(), flipped ? 87 : 86);
    flips += flipped;
  }
  EXPECT_GT(flips, 70);
  EXPECT_LT(flips, 130);
}

TEST(ClipTransforms, ShapesAndCrops) {
  at::Tensor clip = at::rand({3, 2, 30, 40});
  EXPECT_EQ(
      resize(clip, 15, 20).sizes().vec(), (std::vector<int64_t>{3, 2, 15, 20}));
  EXPECT_EQ(
      resize_short_side(clip, 60).sizes().vec(),
      (std::vector<int64_t>{3, 2, 60, 80}));
  at::Tensor cc = center_crop(clip, 10, 20);
  EXPECT_TRUE(at::equal(cc, clip.narrow(2, 10, 10).narrow(3, 10, 20)));
  EXPECT_THROW(center_crop(clip, 31, 10), std::invalid_argument);
  // Resizing a constant image keeps it constant (antialiased shrink too).
  at::Tensor flat = at::full({3, 1, 30, 40}, 0.25);
  EXPECT_TRUE(at::allclose(resize(flat, 7, 9), at::full({3, 1, 7, 9}, 0.25)));
  std::mt19937_64 rng(5);
  MultiScaleCropOptions ms;
  ms.size = 16;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(
        multi_scale_crop(clip, ms, rng).sizes().vec(),
        (std::vector<int64_t>{3, 2, 16, 16}));
  }
}

TEST(ClipTransforms, NormalizeGivesZeroMeanUnitStd) {
  at::manual_seed(0);
  at::Tensor clip = at::empty({3, 4, 32, 32});
  const std::vector<double> centre{0.2, 0.5, 0.9}, spread{0.1, 0.3, 0.05};
  for (int c = 0; c < 3; ++c)
    clip[c].normal_(centre[c], spread[c]);
  // With each channel's own statistics the result is exactly standardised.
  std::vector<double> mean, stdev;
  for (int c = 0; c < 3; ++c) {
    mean.push_back(clip[c].mean().item<double>());
    stdev.push_back(clip[c].std(/*unbiased=*/false).item<double>());
  }
  at::Tensor n = normalize(clip, mean, stdev);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(n[c].mean().item<double>(), 0.0, 1e-4) << c;
    EXPECT_NEAR(n[c].std(/*unbiased=*/false).item<double>(), 1.0, 1e-4) << c;
  }
  // Channel order matters: swapping the statistics breaks it.
  at::Tensor swapped = normalize(
      clip, {mean[2], mean[1], mean[0]}, {stdev[2], stdev[1], stdev[0]});
  EXPECT_GT(std::abs(swapped[0].mean().item<double>()), 1.0);
  EXPECT_ANY_THROW(normalize(clip, {0.5}, {0.5}));
}

TEST(VolumeTransforms, CtWindow) {
  at::Tensor v = at::tensor({-2000.0, -1000.0, 0.0, 500.0, 3000.0}, at::kFloat)
                     .view({1, 1, 1, 5});
  at::Tensor w = window_normalize(v, -1000, 1000);
  EXPECT_TRUE(at::allclose(
      w.flatten(), at::tensor({0.0, 0.0, 0.5, 0.75, 1.0}, at::kFloat)));
  EXPECT_THROW(window_normalize(v, 1, 1), std::invalid_argument);
}

TEST(VolumeTransforms, ZScoreOverNonzeroVoxelsKeepsBackground) {
  at::manual_seed(1);
  at::Tensor v = at::zeros({2, 10, 10, 10});
  v[0].narrow(0, 2, 5).normal_(300, 40);
  v[1].normal_(-5, 2);
  at::Tensor z = zscore_normalize(v, /*nonzero_only=*/true);
  at::Tensor fg = v[0] != 0;
  EXPECT_NEAR(z[0].masked_select(fg).mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(z[0].masked_select(fg).std(false).item<double>(), 1.0, 1e-4);
  EXPECT_EQ(z[0].masked_select(~fg).abs().max().item<double>(), 0.0);
  EXPECT_NEAR(z[1].mean().item<double>(), 0.0, 1e-4);
  at::Tensor all = zscore_normalize(v, /*nonzero_only=*/false);
  EXPECT_NEAR(all[0].mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(all[0].std(false).item<double>(), 1.0, 1e-4);
}

TEST(VolumeTransforms, ForegroundOversamplingHitsTheConfiguredRate) {
  // A 2x2x2 foreground cube in a 48^3 volume: a uniform 8^3 patch contains it
  // with probability (9/41)^3 ~ 1%, so the rate of patches with foreground
  // is ~ fraction + 1%.
  at::Tensor volume = at::rand({1, 48, 48, 48});
  at::Tensor labels = at::zeros({48, 48, 48}, at::kLong);
  labels.narrow(0, 30, 2).narrow(1, 10, 2).narrow(2, 20, 2).fill_(1);
  PatchOptions o;
  o.size = {8, 8, 8};
  for (double fraction : {0.0, 0.33, 0.8}) {
    o.foreground_fraction = fraction;
    std::mt19937_64 rng(1234);
    const int draws = 1500;
    int hits = 0;
    for (int i = 0; i < draws; ++i) {
      auto [pv, pl] = random_patch(volume, labels, o, rng);
      ASSERT_EQ(pv.sizes().vec(), (std::vector<int64_t>{1, 8, 8, 8}));
      ASSERT_EQ(pl.sizes().vec(), (std::vector<int64_t>{8, 8, 8}));
      hits += pl.max().item<int64_t>() > 0;
    }
    const double rate = static_cast<double>(hits) / draws;
    EXPECT_NEAR(rate, fraction + (1 - fraction) * 0.0106, 0.04)
        << "fraction " << fraction;
  }
}

TEST(VolumeTransforms, PatchPadsSmallVolumesAndMatchesLabels) {
  at::Tensor labels = at::arange(4 * 5 * 6, at::kLong).view({4, 5, 6});
  at::Tensor volume = labels.to(at::kFloat).unsqueeze(0);
  PatchOptions o;
  o.size = {6, 4, 6};
  std::mt19937_64 rng(2);
  for (int i = 0; i < 10; ++i) {
    auto [pv, pl] = random_patch(volume, labels, o, rng);
    EXPECT_EQ(pl.sizes().vec(), (std::vector<int64_t>{6, 4, 6}));
    EXPECT_TRUE(
        at::equal(pv[0], pl.to(at::kFloat))); // image and labels stay aligned
  }
}

TEST(VolumeTransforms, RandomFlipKeepsImageAndLabelsAligned) {
  at::Tensor labels = at::arange(3 * 4 * 5, at::kLong).view({3, 4, 5});
  at::Tensor volume = labels.to(at::kFloat).unsqueeze(0).repeat({2, 1, 1, 1});
  std::mt19937_64 rng(9);
  int changed = 0;
  for (int i = 0; i < 50; ++i) {
    auto [v, l] = random_flip(volume, labels, 0.5, rng);
    EXPECT_TRUE(at::equal(v[1], l.to(at::kFloat)));
    changed += !at::equal(l, labels);
  }
  EXPECT_GT(changed, 35); // 1 - 1/8 of draws flip something
}
