#include "cakes/models/i3d_resnet.h"

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
    const std::vector<LayerPlan>& plans)
    : bottleneck_(bottleneck), in_channels_(in_channels), width_(width),
      stride_(stride), plans_(plans) {
  reset();
}

int64_t I3DBlockImpl::out_channels() const {
  return bottleneck_ ? width_ * 4 : width_;
}

void I3DBlockImpl::reset() {
  using nn::OpLayerOptions;
  convs_.clear();
  const nn::Triple st = {1, stride_, stride_};
  if (bottleneck_) {
    convs_.push_back(register_module(
        "conv1",
        nn::OpLayer(
            OpLayerOptions(in_channels_, nn::plain_conv({1, 1, 1}, width_)))));
    convs_.push_back(register_module(
        "conv2", nn::OpLayer(OpLayerOptions(width_, plans_.at(0)).stride(st))));
    convs_.push_back(register_module(
        "conv3",
        nn::OpLayer(
            OpLayerOptions(
                plans_.at(0).back().out_channels(),
                nn::plain_conv({1, 1, 1}, width_ * 4))
                .relu(false))));
  } else {
    convs_.push_back(register_module(
        "conv1",
        nn::OpLayer(OpLayerOptions(in_channels_, plans_.at(0)).stride(st))));
    convs_.push_back(register_module(
        "conv2",
        nn::OpLayer(
            OpLayerOptions(plans_.at(0).back().out_channels(), plans_.at(1))
                .relu(false))));
  }
  if (stride_ != 1 || in_channels_ != out_channels())
    downsample_ = register_module(
        "downsample",
        nn::OpLayer(OpLayerOptions(
                        in_channels_, nn::plain_conv({1, 1, 1}, out_channels()))
                        .stride(st)
                        .relu(false)));
}

torch::Tensor I3DBlockImpl::forward(const torch::Tensor& x) {
  auto y = x;
  for (auto& c : convs_)
    y = c->forward(y);
  const auto identity = downsample_ ? downsample_->forward(x) : x;
  return nn::add_relu_(y, identity);
}

std::vector<int64_t> I3DBlockImpl::cost(
    const std::string& name,
    const std::vector<int64_t>& in,
    CostReport& report) const {
  static const char* names[] = {"conv1", "conv2", "conv3"};
  auto sizes = in;
  for (size_t i = 0; i < convs_.size(); ++i) {
    report.layers.push_back(convs_[i]->cost(name + "." + names[i], sizes));
    sizes = report.layers.back().output_shape;
  }
  if (downsample_)
    report.layers.push_back(downsample_->cost(name + ".downsample", in));
  return sizes;
}

void I3DBlockImpl::fold_batchnorm() {
  for (auto& c : convs_)
    c->fold_batchnorm();
  if (downsample_)
    downsample_->fold_batchnorm();
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

  stem_ = register_module(
      "conv1",
      nn::OpLayer(
          nn::OpLayerOptions(3, nn::plain_conv({1, 7, 7}, options.base_width()))
              .stride({1, 2, 2})));
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
        stages_[s].push_back(I3DBlock(bottleneck, in, width, stride, plans));
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

torch::Tensor I3DResNetImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(
      x.dim() == 5 && x.size(1) == 3,
      "i3d_resnet: expected input (N, 3, T, H, W), got ",
      x.sizes());
  auto y = stem_->forward(x);
  y = torch::max_pool3d(y, {1, 3, 3}, {1, 2, 2}, {0, 1, 1});
  for (auto& stage : stages_)
    for (auto& b : stage)
      y = b->forward(y);
  // Spatial average per frame, classify each frame, average logits over
  // frames (TSN consensus, SPEC §3).
  y = y.mean({3, 4}).transpose(1, 2); // (N, T, C)
  y = fc_->forward(dropout_->forward(y));
  return y.mean(1);
}

CostReport I3DResNetImpl::cost(const std::vector<int64_t>& in) const {
  if (in.size() != 5 || in[1] != 3)
    throw std::invalid_argument(
        "i3d_resnet: cost needs input sizes (N, 3, T, H, W)");
  CostReport r;
  r.layers.push_back(stem_->cost("conv1", in));
  auto sizes = r.layers.back().output_shape;
  for (int a = 3; a < 5; ++a) // max-pool 1x3x3, stride (1,2,2), pad (0,1,1)
    sizes[a] = (sizes[a] + 2 - 3) / 2 + 1;
  for (size_t s = 0; s < stages_.size(); ++s)
    for (size_t b = 0; b < stages_[s].size(); ++b)
      sizes = stages_[s][b]->cost(block_name(int(s), int64_t(b)), sizes, r);
  LayerCost fc;
  fc.name = "fc";
  fc.operation = "linear per frame, mean over frames";
  fc.output_shape = {sizes[0], options.num_classes()};
  fc.macs = sizes[0] * sizes[2] * fc_->weight.numel();
  fc.params = fc_->weight.numel() + fc_->bias.numel();
  r.layers.push_back(fc);
  return r;
}

void I3DResNetImpl::fold_batchnorm() {
  stem_->fold_batchnorm();
  for (auto& stage : stages_)
    for (auto& b : stage)
      b->fold_batchnorm();
}

} // namespace cakes::models
