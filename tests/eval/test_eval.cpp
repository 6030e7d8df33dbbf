// Metrics on hand-computed cases, and sliding-window inference against
// whole-volume inference.
#include "cakes/eval/metrics.h"
#include "cakes/eval/sliding_window.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

using namespace cakes::eval;

TEST(TopK, HandMadeLogits) {
  auto logits = at::tensor(
                    {0.1,
                     0.9,
                     0.3,
                     0.2,
                     0.0,
                     0.5, // target 1: rank 1
                     0.9,
                     0.1,
                     0.8,
                     0.7,
                     0.6,
                     0.5, // target 5: rank 5
                     0.9,
                     0.1,
                     0.8,
                     0.7,
                     0.6,
                     0.5}, // target 1: rank 6
                    at::kFloat)
                    .reshape({3, 6});
  auto target = at::tensor({1, 5, 1}, at::kLong);
  EXPECT_EQ(topk_correct(logits, target, 1), 1);
  EXPECT_EQ(topk_correct(logits, target, 4), 1);
  EXPECT_EQ(topk_correct(logits, target, 5), 2);
  EXPECT_EQ(topk_correct(logits, target, 6), 3);
  EXPECT_EQ(topk_correct(logits, target, 100), 3); // k > C counts all

  Accuracy acc;
  acc.add(logits, target);
  acc.add(logits.narrow(0, 0, 1), target.narrow(0, 0, 1));
  EXPECT_EQ(acc.count(), 4);
  EXPECT_DOUBLE_EQ(acc.top1(), 2.0 / 4);
  EXPECT_DOUBLE_EQ(acc.top5(), 3.0 / 4);

  EXPECT_THROW(
      topk_correct(logits, at::tensor({1, 6, 1}, at::kLong), 1),
      std::invalid_argument);
  EXPECT_THROW(
      topk_correct(logits, at::tensor({1, 2}, at::kLong), 1),
      std::invalid_argument);
}

TEST(TopK, MultiClipAveragesLogitsNotVotes) {
  // Two of three clips vote for class 1, but the averaged logits favour 0.
  auto clips =
      at::tensor({5.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0}, at::kFloat)
          .reshape({1, 3, 3});
  auto target = at::tensor({0}, at::kLong);
  EXPECT_EQ(topk_correct(clips, target, 1), 1);
  EXPECT_EQ(topk_correct(clips.select(1, 1), target, 1), 0);
  EXPECT_TRUE(at::allclose(
      average_clips(clips),
      at::tensor({5.0 / 3, 2.0 / 3, 0.0}, at::kFloat).reshape({1, 3})));
}

TEST(Dice, HandComputedIncludingEmptyClasses) {
  auto pred = at::tensor({0, 1, 1, 2, 2, 2}, at::kLong);
  auto target = at::tensor({0, 1, 2, 2, 2, 2}, at::kLong);
  auto d = dice_per_class(pred, target, 5);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_DOUBLE_EQ(d[0], 1.0);         // P={0}, G={0}
  EXPECT_DOUBLE_EQ(d[1], 2.0 * 1 / 3); // P={1,2}, G={1}
  EXPECT_DOUBLE_EQ(d[2], 2.0 * 3 / 7); // P={3,4,5}, G={2,3,4,5}
  EXPECT_TRUE(std::isnan(d[3]));       // empty in both: absent
  EXPECT_TRUE(std::isnan(d[4]));

  DiceCounts counts(5);
  counts.add(pred, target);
  EXPECT_DOUBLE_EQ(counts.mean(), (1.0 + 2.0 / 3 + 6.0 / 7) / 3);
  EXPECT_DOUBLE_EQ(counts.mean(/*skip_classes=*/1), (2.0 / 3 + 6.0 / 7) / 2);
  // Predicted but not labelled, and labelled but not predicted, both score 0.
  counts.add(at::tensor({3, 0}, at::kLong), at::tensor({0, 4}, at::kLong));
  auto d2 = counts.per_class();
  EXPECT_DOUBLE_EQ(d2[3], 0.0);
  EXPECT_DOUBLE_EQ(d2[4], 0.0);
  // Counts accumulate over volumes: class 0 now P={0,+1}, G={0,+0}.
  EXPECT_DOUBLE_EQ(d2[0], 2.0 * 1 / (2 + 2));
  // Nothing present at all: the mean is undefined, not 0 or 1.
  DiceCounts empty(2);
  empty.add(at::zeros({3}, at::kLong), at::zeros({3}, at::kLong));
  EXPECT_TRUE(std::isnan(empty.mean(1)));

  EXPECT_THROW(
      dice_per_class(pred, target, 2), std::invalid_argument); // label 2 >= 2
  EXPECT_THROW(
      dice_per_class(pred, target.narrow(0, 0, 5), 5), std::invalid_argument);
}

TEST(Dice, ThreeDimensionalVolume) {
  auto target = at::zeros({4, 4, 4}, at::kLong);
  target.narrow(0, 0, 2).fill_(1); // 32 voxels of class 1
  auto pred = at::zeros({4, 4, 4}, at::kLong);
  pred.narrow(0, 1, 2).fill_(1); // 32 voxels, 16 shared
  auto d = dice_per_class(pred, target, 2);
  EXPECT_DOUBLE_EQ(d[1], 2.0 * 16 / 64);
  EXPECT_DOUBLE_EQ(d[0], 2.0 * 16 / 64);
}

TEST(SlidingWindow, Starts) {
  EXPECT_EQ(window_starts(10, 4, 0.5), (std::vector<int64_t>{0, 2, 4, 6}));
  EXPECT_EQ(window_starts(11, 4, 0.5), (std::vector<int64_t>{0, 2, 4, 5, 7}));
  EXPECT_EQ(window_starts(8, 4, 0.0), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(window_starts(4, 4, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(window_starts(3, 4, 0.5), (std::vector<int64_t>{0}));
}

// A 3x3x3 convolution: its output near a window's border depends on the
// window, so only a window covering the volume reproduces it.
struct ConvPredictor {
  at::Tensor weight = at::randn({3, 2, 3, 3, 3});
  int calls = 0;
  at::Tensor operator()(const at::Tensor& x) {
    ++calls;
    return at::conv3d(x, weight, /*bias=*/{}, 1, /*padding=*/1);
  }
};

TEST(SlidingWindow, WindowCoveringTheVolumeEqualsWholeVolumeInference) {
  at::manual_seed(0);
  auto volume = at::randn({2, 6, 7, 5});
  ConvPredictor conv;
  auto whole = conv(volume.unsqueeze(0)).squeeze(0);
  SlidingWindowOptions o;
  o.window = {6, 7, 5};
  auto logits = sliding_window_logits(volume, std::ref(conv), o);
  EXPECT_EQ(conv.calls, 2);
  EXPECT_TRUE(at::allclose(logits, whole, 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(
      sliding_window_labels(volume, std::ref(conv), o), whole.argmax(0)));
}

TEST(SlidingWindow, OverlappingWindowsOfAPointwiseModelEqualWholeVolume) {
  // A 1x1x1 model gives every window the same value at a voxel, so a correct
  // tiling (every voxel covered, weights normalised, outputs put back in
  // place) reproduces the whole-volume result exactly up to rounding.
  at::manual_seed(1);
  auto volume = at::randn({2, 11, 9, 10});
  auto weight = at::randn({4, 2});
  int calls = 0;
  // A 1x1x1 convolution (at::conv3d's 1x1x1 path is slow here).
  WindowPredictor pointwise = [&](const at::Tensor& x) {
    ++calls;
    return at::einsum("kc,bcdhw->bkdhw", {weight, x});
  };
  auto whole = pointwise(volume.unsqueeze(0)).squeeze(0);
  for (bool gaussian : {true, false}) {
    SlidingWindowOptions o;
    o.window = {4, 4, 5};
    o.overlap = 0.5;
    o.gaussian = gaussian;
    o.batch_windows = 3;
    calls = 0;
    auto logits = sliding_window_logits(volume, pointwise, o);
    // Starts: 5 along D, 4 along H, 4 along W; the 16 windows of each D
    // start go in batches of 3 (a batch never spans two D starts): 6 per D.
    EXPECT_EQ(calls, 5 * 6);
    EXPECT_TRUE(at::allclose(logits, whole, 1e-4, 1e-5))
        << (logits - whole).abs().max().item<float>();
    EXPECT_TRUE(at::equal(
        sliding_window_labels(volume, pointwise, o), whole.argmax(0)));
  }
  // A volume smaller than the window is padded and cropped back.
  SlidingWindowOptions big;
  big.window = {16, 16, 16};
  auto small = sliding_window_logits(volume, pointwise, big);
  EXPECT_EQ(small.sizes(), whole.sizes());
  EXPECT_TRUE(at::allclose(small, whole, 1e-4, 1e-5));
}

TEST(SlidingWindow, GaussianFavoursTheWindowWhoseCentreIsNearer) {
  // Channel 0 holds the x coordinate; each window predicts, everywhere, the x
  // at which it starts. Windows start at 0 and 2 (width 6 in a width-8
  // volume); x = 2 is near the first window's centre (2.5), x = 5 near the
  // second's (4.5).
  auto volume = at::arange(8, at::kFloat).reshape({1, 1, 1, 8});
  WindowPredictor start_x = [](const at::Tensor& x) {
    return x.narrow(4, 0, 1).expand(x.sizes()).contiguous();
  };
  SlidingWindowOptions o;
  o.window = {1, 1, 6};
  o.overlap = 0.5;
  auto g = sliding_window_logits(volume, start_x, o).reshape({8});
  EXPECT_FLOAT_EQ(g[0].item<float>(), 0);
  EXPECT_FLOAT_EQ(g[7].item<float>(), 2);
  EXPECT_LT(g[2].item<float>(), 1);
  EXPECT_GT(g[5].item<float>(), 1);
  o.gaussian = false;
  auto u = sliding_window_logits(volume, start_x, o).reshape({8});
  EXPECT_FLOAT_EQ(u[2].item<float>(), 1);
  EXPECT_FLOAT_EQ(u[5].item<float>(), 1);
}

TEST(SlidingWindow, BadArgumentsAndPredictorShapes) {
  auto volume = at::randn({1, 4, 4, 4});
  WindowPredictor id = [](const at::Tensor& x) { return x; };
  WindowPredictor wrong = [](const at::Tensor& x) { return x.narrow(2, 0, 1); };
  SlidingWindowOptions o;
  o.window = {2, 2, 2};
  EXPECT_TRUE(at::allclose(sliding_window_logits(volume, id, o), volume));
  EXPECT_THROW(sliding_window_logits(volume, wrong, o), std::invalid_argument);
  EXPECT_THROW(sliding_window_logits(volume[0], id, o), std::invalid_argument);
  o.overlap = 1.0;
  EXPECT_THROW(sliding_window_logits(volume, id, o), std::invalid_argument);
  o.overlap = 0.5;
  o.window = {0, 2, 2};
  EXPECT_THROW(sliding_window_logits(volume, id, o), std::invalid_argument);
}

} // namespace
