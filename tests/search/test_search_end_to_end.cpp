// The search end to end on a task where time matters: the class of a clip is
// the direction (left or right) in which a square moves. Left clips are the
// right clips played backwards, so every single frame has the same
// distribution in both classes and a network of 2D kernels (frames are only
// averaged at the end, TSN-style) cannot beat chance; telling them apart
// needs a temporal kernel. A short cost-priority search must keep temporal
// kernels, and the derived network, trained briefly from the weights it
// inherits, must beat the all-2D network trained for as many steps.
#include "cakes/search/search.h"

#include "cakes/data/dataset.h"
#include "cakes/models/zoo.h"
#include "cakes/train/losses.h"
#include "cakes/train/trainer.h"

#include "support/temp_dir.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

namespace {

using namespace cakes;
using namespace cakes::search;

constexpr int64_t kFrames = 8, kSide = 32, kSquare = 6, kStep = 2;

class MotionClips : public data::Dataset {
public:
  MotionClips(int64_t n, uint64_t salt) : n_(n), salt_(salt) {}
  int64_t size() const override {
    return n_;
  }
  data::Sample get(int64_t index, std::mt19937_64&) const override {
    std::mt19937_64 g(salt_ * 1000003 + uint64_t(index));
    const int64_t label = index % 2;
    std::uniform_int_distribution<int> row(1, kSide - kSquare - 1),
        col(1, kSide - kSquare - kStep * (kFrames - 1) - 1);
    const int r = row(g), c0 = col(g);
    auto clip = torch::zeros({3, kFrames, kSide, kSide});
    for (int t = 0; t < kFrames; ++t) {
      // Right: c0, c0 + 2, ...; left: the same positions in reverse order.
      const int c = c0 + kStep * (label ? t : kFrames - 1 - t);
      clip.index_put_(
          {torch::indexing::Slice(),
           t,
           torch::indexing::Slice(r, r + kSquare),
           torch::indexing::Slice(c, c + kSquare)},
          1.0);
    }
    torch::Generator gen = at::detail::createCPUGenerator(g());
    clip.add_(0.1 * at::randn(clip.sizes(), gen));
    return {clip, torch::scalar_tensor(label, torch::kLong)};
  }

private:
  int64_t n_;
  uint64_t salt_;
};

double accuracy(
    const std::function<torch::Tensor(const torch::Tensor&)>& f,
    const data::Dataset& d) {
  torch::NoGradGuard ng;
  std::mt19937_64 rng(0);
  std::vector<torch::Tensor> xs, ys;
  for (int64_t i = 0; i < d.size(); ++i) {
    auto s = d.get(i, rng);
    xs.push_back(s.input);
    ys.push_back(s.target);
  }
  const auto pred = f(torch::stack(xs)).argmax(1);
  return pred.eq(torch::stack(ys)).to(torch::kDouble).mean().item<double>();
}

TEST(SearchEndToEnd, MotionDirectionNeedsTemporalKernels) {
  // A narrow I3D ResNet-18 (base width 8) on 8x32x32 clips, one thread (the
  // layers are too small to share): about 0.1 s per training step.
  torch::manual_seed(0);
  at::set_num_threads(1);
  auto train_set = std::make_shared<MotionClips>(128, 1);
  const MotionClips val(64, 2);
  const test::TempDir dir("search_e2e");

  models::NetworkSpec a;
  a.network = "i3d_resnet18";
  a.num_classes = 2;
  a.width = 8;
  auto net = build_supernet(a, parse_candidates("3x3x3,1x3x3,3x1x1"));
  SearchOptions o;
  o.mode = "C";
  o.input_sizes = {1, 3, kFrames, kSide, kSide};
  o.sparsity = 1e-3;
  o.trainer.epochs = 6;
  o.trainer.schedule.base_lr = 0.05;
  o.trainer.optimizer.weight_decay = 1e-4;
  o.trainer.clip_grad_norm = 20;
  o.trainer.checkpoint_path = dir / "search.ckpt";
  train::LoaderOptions lo;
  lo.batch_size = 8;
  lo.drop_last = true;
  lo.seed = 3;
  train::Loader loader(train_set, lo);
  run_search(net, loader, train::cross_entropy, o);

  // The checkpoint is recognised and rebuilds the same importances.
  SearchMeta back;
  auto again = load_search_checkpoint(o.trainer.checkpoint_path, &back);
  EXPECT_EQ(back.mode, "C");
  EXPECT_EQ(back.input_sizes, o.input_sizes);
  EXPECT_EQ(importance(again), importance(net));

  const auto d = derive_by_volume(net);
  int64_t temporal = 0;
  for (const auto& l : net.layers)
    for (const auto& g : d.configs[l.position].groups())
      if (g.kernel.d > 1)
        temporal += g.channels;
  EXPECT_GT(temporal, 0) << "no temporal kernel kept";
  // As in the paper, the derived network is then trained (here starting from
  // the super-network's kept channels: dropping two thirds of each layer's
  // channels shifts every following activation, so it is not evaluated
  // as inherited). The all-2D network of the same width gets as many steps.
  train::TrainerOptions to = o.trainer;
  to.epochs = 3;
  to.schedule.base_lr = 0.02;
  to.checkpoint_path.clear();
  to.after_backward = nullptr;
  auto derived = inherit(net, d);
  train::Trainer(derived, train::cross_entropy, to).fit(loader);
  derived.module->eval();
  const double acc_derived = accuracy(derived.forward, val);

  models::NetworkSpec a2 = a;
  a2.op = OpSpec{"conv2d", {}, {}};
  auto flat = models::build(a2);
  train::Trainer(flat, train::cross_entropy, to).fit(loader);
  flat.module->eval();
  const double acc_2d = accuracy(flat.forward, val);
  RecordProperty("derived_top1", std::to_string(acc_derived));
  RecordProperty("2d_top1", std::to_string(acc_2d));
  RecordProperty("temporal_channels", std::to_string(temporal));
  EXPECT_GT(acc_derived, acc_2d + 0.2)
      << "derived " << acc_derived << " vs 2D " << acc_2d;
}

} // namespace
