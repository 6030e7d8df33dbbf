// OpLayer: one position of a network — a LayerPlan's convolution stages (each a
// fused shrunk convolution, SPEC §2), then one BatchNorm over the last stage's
// channels, then the last stage's output_index if it has one (channels moved or
// summed onto the output channels, config.h), then an optional ReLU. Every
// convolution of our networks is an OpLayer (the stem 1x7x7, 1x1x1 convs and
// shortcut projections are one-stage, one-group plans), because the fused op is
// far faster here than at::conv3d.
#pragma once

#include "cakes/models/cost.h"
#include "cakes/nn/op_spec.h"

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/pimpl.h>

#include <array>

namespace cakes::nn {

using Triple = std::array<int64_t, 3>;

struct OpLayerOptions {
  OpLayerOptions(int64_t in_channels, LayerPlan plan)
      : in_channels_(in_channels), plan_(std::move(plan)) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(LayerPlan, plan);
  TORCH_ARG(Triple, stride) = {1, 1, 1}; // applied by stage 0
  // Off where the ReLU comes after a residual addition.
  TORCH_ARG(bool, relu) = true;
};

class OpLayerImpl : public torch::nn::Cloneable<OpLayerImpl> {
public:
  explicit OpLayerImpl(OpLayerOptions options);

  void reset() override;

  // (N, C_in, D, H, W) -> (N, C_out, D', H', W').
  torch::Tensor forward(const torch::Tensor& x);

  // Deploy transform: scales the last stage's weights by the BatchNorm's
  // gamma/sqrt(var+eps) and keeps beta - mean*scale as a bias, so inference
  // skips the BatchNorm. Equal to eval-mode outputs within float tolerance.
  // Irreversible; the layer then refuses to run in training mode.
  void fold_batchnorm();
  bool folded() const {
    return folded_;
  }

  // Output sizes for input sizes (N, C_in, D, H, W) and the cost row.
  std::vector<int64_t> output_sizes(const std::vector<int64_t>& in) const;
  models::LayerCost
  cost(const std::string& name, const std::vector<int64_t>& in) const;
  // "conv 1x1x1" for one single-group stage that is not 3x3, else the stages'
  // configurations, e.g. "1x3x3:64 > 3x1x1:64".
  std::string describe() const;

  int64_t out_channels() const {
    return options.plan().back().out_channels();
  }
  // stages()[s][g] is stage s's weight of group g, registered as
  // "weight_<DxHxW>" (single stage) or "stage<s>_weight_<DxHxW>".
  const std::vector<std::vector<torch::Tensor>>& stages() const {
    return stages_;
  }
  torch::nn::BatchNorm3d& bn() {
    return bn_;
  }

  // Channel subsets for the performance-priority search (SPEC §4). When set,
  // forward uses only these channels of the last stage (indices into its
  // concatenated output, in any order) with the matching rows of its weights
  // and BatchNorm entries (whose running statistics are updated in place),
  // and/or only these input channels (columns of stage 0's weights).
  // Gradients reach only the selected entries. Without an output_index the
  // output has one channel per selected index, in ascending index order; with
  // one, the output keeps out_channels() channels and each selected channel
  // goes where output_index sends it (outputs nothing reaches are zero). An
  // undefined tensor restores the full layer. Int64 index tensors.
  void select_outputs(torch::Tensor out_index);
  void select_inputs(torch::Tensor in_index);

  OpLayerOptions options;

private:
  torch::Tensor select_out_, select_in_;
  torch::Tensor forward_selected(const torch::Tensor& x);
  // The last stage's output_index applied to y (N, channels, ...), whose
  // channels are the layer's `selected` ones (undefined: all of them).
  torch::Tensor
  to_outputs(const torch::Tensor& y, const torch::Tensor& selected) const;
  torch::Tensor out_index_; // output_index as int64, undefined without one
  // Cheaper equivalents of out_index_: the inverse permutation (a gather), or
  // the number of blocks summed when output_index is i -> i % out_channels.
  torch::Tensor gather_;
  int64_t sum_blocks_ = 0;
  std::vector<std::vector<torch::Tensor>> stages_;
  torch::nn::BatchNorm3d bn_{nullptr};
  torch::Tensor bias_; // after folding
  bool folded_ = false;
};
TORCH_MODULE(OpLayer);

// In-place y = relu(y + other) (residual additions) and y = [relu](y + bias
// per channel), each in one pass when y is a contiguous float32 tensor outside
// autograd, else through the usual ops.
torch::Tensor add_relu_(torch::Tensor& y, const torch::Tensor& other);
torch::Tensor
bias_relu_(torch::Tensor& y, const torch::Tensor& bias, bool relu);
bool fusable(const torch::Tensor& y);

// A one-stage, one-group plan: plain convolution with `kernel`.
inline LayerPlan plain_conv(SubKernel kernel, int64_t out_channels) {
  return {Config::uniform(kernel, out_channels)};
}

} // namespace cakes::nn
