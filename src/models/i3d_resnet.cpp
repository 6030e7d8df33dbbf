#include "cakes/models/i3d_resnet.h"

#include "walk.h"

#include <torch/torch.h>

#include <stdexcept>

namespace cakes::models {
namespace {

struct Arch {
  bool bottleneck;
  std::array<int64_t, 4> blocks;
};

Arch arch_for(int64_t depth) {
  switch (depth) {
  case 18:
    return {false, {2, 2, 2, 2}};
  case 34:
    return {false, {3, 4, 6, 3}};
  case 50:
    return {true, {3, 4, 6, 3}};
  case 101:
    return {true, {3, 4, 23, 3}};
  default:
    throw std::invalid_argument(
        "i3d_resnet: unsupported depth " + std::to_string(depth) +
        " (expected 18, 34, 50 or 101)");
  }
}

// Stage widths are base_width x (1, 2, 4, 8); the paper's networks use 64.
constexpr int64_t kWidthFactors[4] = {1, 2, 4, 8};

// The one walk over the architecture, shared by positions() and the network,
// so that the configuration order and the modules cannot disagree.
template <typename Fn>
void for_each_block(int64_t depth, int64_t base_width, Fn&& fn) {
  const Arch a = arch_for(depth);
  if (base_width < 1)
    throw std::invalid_argument(
        "i3d_resnet: base width must be positive, got " +
        std::to_string(base_width));
  const int64_t expansion = a.bottleneck ? 4 : 1;
  int64_t in = base_width;
  for (int s = 0; s < 4; ++s) {
    for (int64_t b = 0; b < a.blocks[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      const int64_t width = base_width * kWidthFactors[s];
      fn(s, b, a.bottleneck, in, width, stride);
      in = width * expansion;
    }
  }
}

std::vector<Position> block_positions(
    const std::string& name,
    bool bottleneck,
    int64_t in,
    int64_t width,
    int64_t stride) {
  const std::array<int64_t, 3> st = {1, stride, stride};
  // The position's reader is the next convolution of the block, except where
  // the output goes into the residual addition (Position::reader).
  if (bottleneck)
    return {{name + ".conv2", width, width, st, name + ".conv3"}};
  return {
      {name + ".conv1", in, width, st, name + ".conv2"},
      {name + ".conv2", width, width, {1, 1, 1}, ""}};
}

std::string block_name(int s, int64_t b) {
  return "layer" + std::to_string(s + 1) + "." + std::to_string(b);
}

} // namespace

std::vector<Position> i3d_resnet_positions(int64_t depth, int64_t base_width) {
  std::vector<Position> out;
  for_each_block(
      depth,
      base_width,
      [&](int s, int64_t b, bool bn, int64_t in, int64_t w, int64_t st) {
        for (auto& p : block_positions(block_name(s, b), bn, in, w, st))
          out.push_back(std::move(p));
      });
  return out;
}

I3DBlockImpl::I3DBlockImpl(
    bool bottleneck,
    int64_t in_channels,
    int64_t width,
    int64_t stride,
    const std::vector<LayerPlan>& plans,
    nn::NormPtr norm)
    : bottleneck_(bottleneck), in_channels_(in_channels), width_(width),
      stride_(stride), plans_(plans), norm_(std::move(norm)) {
  reset();
}

int64_t I3DBlockImpl::out_channels() const {
  return bottleneck_ ? width_ * 4 : width_;
}

void I3DBlockImpl::reset() {
  using nn::OpLayerOptions;
  convs_.clear();
  const nn::Triple st = {1, stride_, stride_};
  auto conv = [&](const char* name, OpLayerOptions o) {
    convs_.push_back(register_module(name, nn::OpLayer(o.norm(norm_))));
  };
  // The last convolution's ReLU comes after the residual addition.
  if (bottleneck_) {
    conv(
        "conv1",
        OpLayerOptions(in_channels_, nn::plain_conv({1, 1, 1}, width_)));
    conv("conv2", OpLayerOptions(width_, plans_.at(0)).stride(st));
    conv(
        "conv3",
        OpLayerOptions(
            plans_.at(0).back().out_channels(),
            nn::plain_conv({1, 1, 1}, width_ * 4)));
  } else {
    conv("conv1", OpLayerOptions(in_channels_, plans_.at(0)).stride(st));
    conv(
        "conv2",
        OpLayerOptions(plans_.at(0).back().out_channels(), plans_.at(1)));
  }
  if (stride_ != 1 || in_channels_ != out_channels())
    downsample_ = register_module(
        "downsample",
        nn::OpLayer(OpLayerOptions(
                        in_channels_, nn::plain_conv({1, 1, 1}, out_channels()))
                        .stride(st)
                        .relu(false)
                        .norm(norm_)));
}

std::vector<std::pair<std::string, nn::OpLayer>> I3DBlockImpl::layers() const {
  static const char* names[] = {"conv1", "conv2", "conv3"};
  std::vector<std::pair<std::string, nn::OpLayer>> out;
  for (size_t i = 0; i < convs_.size(); ++i)
    out.emplace_back(names[i], convs_[i]);
  if (downsample_)
    out.emplace_back("downsample", downsample_);
  return out;
}

template <class Self, class Run>
typename Run::Value I3DBlockImpl::walk(
    Self& self,
    Run& run,
    const std::string& name,
    const typename Run::Value& x) {
  static const char* names[] = {"conv1", "conv2", "conv3"};
  auto y = x;
  const size_t last = self.convs_.size() - 1;
  for (size_t i = 0; i < last; ++i)
    y = run.layer(name + "." + names[i], *self.convs_[i], y);
  return run.layer_with_residual(
      name + "." + names[last], *self.convs_[last], y, [&] {
        return self.downsample_
                   ? run.layer(name + ".downsample", *self.downsample_, x)
                   : x;
      });
}

at::Tensor I3DBlockImpl::forward(const at::Tensor& x) {
  TensorRun run;
  return walk(*this, run, "", x);
}

I3DResNetImpl::I3DResNetImpl(I3DResNetOptions options_)
    : options(std::move(options_)) {
  reset();
}

void I3DResNetImpl::reset() {
  if (options.num_classes() <= 0)
    throw std::invalid_argument(
        "i3d_resnet: num_classes must be positive, got " +
        std::to_string(options.num_classes()));
  OpSpec spec = options.op();
  if (spec.candidates.empty())
    spec.candidates = video_candidates();
  const auto positions =
      i3d_resnet_positions(options.depth(), options.base_width());
  // Validated here, before any weight is allocated.
  const auto factory = make_op_factory(spec, positions);

  layers_.clear();
  stem_ = register_module(
      "conv1",
      nn::OpLayer(
          nn::OpLayerOptions(3, nn::plain_conv({1, 7, 7}, options.base_width()))
              .stride({1, 2, 2})
              .norm(options.norm())));
  layers_.emplace_back("conv1", stem_);
  stages_.assign(4, {});
  size_t pos = 0;
  for_each_block(
      options.depth(),
      options.base_width(),
      [&](int s,
          int64_t b,
          bool bottleneck,
          int64_t in,
          int64_t width,
          int64_t stride) {
        std::vector<LayerPlan> plans;
        for (const auto& p :
             block_positions(block_name(s, b), bottleneck, in, width, stride)) {
          plans.push_back(factory(pos, p));
          ++pos;
        }
        stages_[s].push_back(
            I3DBlock(bottleneck, in, width, stride, plans, options.norm()));
        for (auto& [name, layer] : stages_[s].back()->layers())
          layers_.emplace_back(block_name(s, b) + "." + name, layer);
      });
  for (int s = 0; s < 4; ++s) {
    torch::nn::Sequential layer;
    for (auto& b : stages_[s])
      layer->push_back(b);
    register_module("layer" + std::to_string(s + 1), layer);
  }
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout()));
  fc_ = register_module(
      "fc",
      torch::nn::Linear(
          stages_[3].back()->out_channels(), options.num_classes()));
}

template <class Self, class Run>
typename Run::Value
I3DResNetImpl::walk(Self& self, Run& run, const typename Run::Value& x) {
  const auto& in = Run::sizes(x);
  if (in.size() != 5 || in[1] != 3)
    throw std::invalid_argument(
        "i3d_resnet: expected input (N, 3, T, H, W), got " +
        c10::str(c10::IntArrayRef(in)));
  auto y = run.layer("conv1", *self.stem_, x);
  y = run.max_pool(y, {1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  for (size_t s = 0; s < self.stages_.size(); ++s)
    for (size_t b = 0; b < self.stages_[s].size(); ++b)
      y = I3DBlockImpl::walk(
          *self.stages_[s][b], run, block_name(int(s), int64_t(b)), y);
  // Spatial average per frame, classify each frame, average logits over
  // frames (TSN consensus, docs/CAKES.md §3).
  return run.frame_classifier("fc", *self.dropout_, *self.fc_, y);
}

at::Tensor I3DResNetImpl::forward(const at::Tensor& x) {
  TensorRun run;
  return walk(*this, run, x);
}

CostReport I3DResNetImpl::cost(const std::vector<int64_t>& in) const {
  CostRun run;
  walk(*this, run, in);
  return std::move(run.report);
}

} // namespace cakes::models
