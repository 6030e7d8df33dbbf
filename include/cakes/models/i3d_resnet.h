// I3D ResNet-18/34/50/101 for video (docs/CAKES.md §3), with the operation at
// every 3x3 position given by an OpSpec (conv3d, conv2d, p3d, cakes, ... see
// op_spec.h).
//
// Input (N, 3, T, H, W) float32; output (N, num_classes) logits averaged over
// the T frames. Time is never strided. Module names follow torchvision:
// conv1, bn in each OpLayer, layer<s>.<b>.conv<i>, layer<s>.<b>.downsample, fc.
// Bottleneck depths (50, 101) have one operation position per block (conv2);
// basic-block depths (18, 34) have two (conv1 and conv2).
#pragma once

#include "cakes/models/network.h"
#include "cakes/nn/op_layer.h"
#include "cakes/nn/op_spec.h"

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace cakes::models {

struct I3DResNetOptions {
  TORCH_ARG(int64_t, depth) = 50; // 18, 34, 50 or 101
  TORCH_ARG(int64_t, num_classes) = 174;
  TORCH_ARG(double, dropout) = 0.3;
  TORCH_ARG(OpSpec, op) = {};
  // Stem and first-stage width; stages are 1, 2, 4, 8 times it. 64 is the
  // published network; smaller widths make CPU-sized networks (the demo).
  TORCH_ARG(int64_t, base_width) = 64;
  // The norm of every layer (nn/norm.h); null: batch_norm().
  TORCH_ARG(nn::NormPtr, norm) = nullptr;
};

// The operation positions of an I3D ResNet of this depth, in block order (the
// order of per-block configurations). Throws std::invalid_argument on an
// unsupported depth.
std::vector<Position>
i3d_resnet_positions(int64_t depth, int64_t base_width = 64);

class I3DBlockImpl : public torch::nn::Cloneable<I3DBlockImpl> {
public:
  // `bottleneck` selects 1x1 - op - 1x1 (expansion 4) over op - op.
  I3DBlockImpl(
      bool bottleneck,
      int64_t in_channels,
      int64_t width,
      int64_t stride,
      const std::vector<LayerPlan>& plans,
      nn::NormPtr norm = nullptr);
  void reset() override;
  at::Tensor forward(const at::Tensor& x);

  int64_t out_channels() const;
  // conv1..conv3 (bottleneck) or conv1..conv2, then downsample if any, with
  // their names in the block.
  std::vector<std::pair<std::string, nn::OpLayer>> layers() const;

  template <class Self, class Run>
  static typename Run::Value walk(
      Self& self,
      Run& run,
      const std::string& name,
      const typename Run::Value& x);

private:
  bool bottleneck_;
  int64_t in_channels_, width_, stride_;
  std::vector<LayerPlan> plans_;
  nn::NormPtr norm_;
  std::vector<nn::OpLayer> convs_; // conv1..conv3 (bottleneck) or conv1..conv2
  nn::OpLayer downsample_{nullptr};
};
TORCH_MODULE(I3DBlock);

class I3DResNetImpl : public torch::nn::Cloneable<I3DResNetImpl>,
                      public Network {
public:
  explicit I3DResNetImpl(I3DResNetOptions options);
  void reset() override;

  at::Tensor forward(const at::Tensor& x) override;
  CostReport cost(const std::vector<int64_t>& input_sizes) const override;
  const std::vector<std::pair<std::string, nn::OpLayer>>&
  layers() const override {
    return layers_;
  }

  I3DResNetOptions options;

private:
  template <class Self, class Run>
  static typename Run::Value
  walk(Self& self, Run& run, const typename Run::Value& x);

  nn::OpLayer stem_{nullptr};
  std::vector<std::vector<I3DBlock>> stages_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear fc_{nullptr};
  std::vector<std::pair<std::string, nn::OpLayer>> layers_;
};
TORCH_MODULE(I3DResNet);

} // namespace cakes::models
