// OpLayer: the one layer type every network is made of. One position of a
// network: a LayerPlan's convolution stages (each the fused shrunk
// convolution, docs/CAKES.md §2), then a normalisation over the last stage's
// channels (norm.h), then the last stage's output order if its configuration
// has one (config.h), then an optional residual addition and an optional ReLU.
// The CAKES layer is the one-stage plan {config}; the stem 1x7x7, the 1x1x1
// convolutions and shortcut projections are one-stage, one-group plans,
// because the fused op is far faster here than at::conv3d.
//
// Other areas change what a layer computes only through a LayerExtension
// (the search's super-networks and channel subsets, search/supernet.h), built
// from the pieces the layer offers: convolve, normalize, finish.
#pragma once

#include "cakes/nn/cost.h"
#include "cakes/nn/norm.h"
#include "cakes/nn/op_spec.h"

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <memory>

namespace cakes::nn {

using Triple = std::array<int64_t, 3>;

struct OpLayerOptions {
  OpLayerOptions(int64_t in_channels, LayerPlan plan)
      : in_channels_(in_channels), plan_(std::move(plan)) {}
  // The CAKES layer: one stage.
  OpLayerOptions(int64_t in_channels, Config config)
      : in_channels_(in_channels), plan_{std::move(config)} {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(LayerPlan, plan);
  TORCH_ARG(Triple, stride) = {1, 1, 1};   // applied by stage 0
  TORCH_ARG(Triple, dilation) = {1, 1, 1}; // every stage
  // The ReLU after the normalisation (and after the residual, when forward
  // is given one).
  TORCH_ARG(bool, relu) = true;
  // null: batch_norm().
  TORCH_ARG(NormPtr, norm) = nullptr;
};

class OpLayerImpl;

// A different computation of a layer from the layer's own parameters, which
// stay as they are (names, shapes, checkpoints). See the file comment.
class LayerExtension {
public:
  virtual ~LayerExtension() = default;
  // Replaces OpLayerImpl::forward(x, residual).
  virtual at::Tensor forward(
      OpLayerImpl& layer, const at::Tensor& x, const at::Tensor& residual) = 0;
  // The layer's output channels while the extension is installed.
  virtual int64_t out_channels(const OpLayerImpl& layer) const = 0;
};

class OpLayerImpl : public torch::nn::Cloneable<OpLayerImpl> {
public:
  explicit OpLayerImpl(OpLayerOptions options);
  // The CAKES layer over `in_channels`.
  OpLayerImpl(int64_t in_channels, Config config)
      : OpLayerImpl(OpLayerOptions(in_channels, std::move(config))) {}

  void reset() override;

  // (N, C_in, D, H, W) -> (N, C_out, D', H', W'). `residual` (the output's
  // shape), when given, is added before the ReLU.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& residual = {});

  // The pieces of forward, for extensions.
  // The convolution stages with these weights (stages()'s layout, possibly
  // sliced along their output or input channels).
  at::Tensor convolve(
      const at::Tensor& x,
      const std::vector<std::vector<at::Tensor>>& stages) const;
  // The norm over all of the last stage's channels, or over `channels`
  // (int64 indices into them, undefined = all): y has one channel per index,
  // normalised with those channels' entries, and in training mode only those
  // channels' running statistics move.
  at::Tensor normalize(const at::Tensor& y, const at::Tensor& channels = {});
  // The residual (if defined) and the ReLU (if options.relu), in place.
  at::Tensor finish(at::Tensor y, const at::Tensor& residual) const;

  // Deploy transform: scales the last stage's weights by the BatchNorm's
  // gamma/sqrt(var+eps) and keeps beta - mean*scale as a bias, so inference
  // skips the normalisation. Equal to eval-mode outputs within float
  // tolerance. Irreversible; the layer then refuses to run in training mode.
  void fold_batchnorm();
  bool folded() const {
    return folded_;
  }

  void set_extension(std::shared_ptr<LayerExtension> extension);
  LayerExtension* extension() const {
    return extension_.get();
  }

  // Output sizes for input sizes (N, C_in, D, H, W) and the cost row.
  std::vector<int64_t> output_sizes(const std::vector<int64_t>& in) const;
  LayerCost cost(const std::string& name, const std::vector<int64_t>& in) const;
  // "conv 1x1x1" for one single-group stage that is not 3x3, else the stages'
  // configurations, e.g. "1x3x3:64 > 3x1x1:64".
  std::string describe() const;

  int64_t out_channels() const;
  // stages()[s][g] is stage s's weight of group g, registered as
  // "weight_<DxHxW>" (single stage) or "stage<s>_weight_<DxHxW>".
  const std::vector<std::vector<at::Tensor>>& stages() const {
    return stages_;
  }
  torch::nn::BatchNorm3d& bn() {
    return bn_;
  }
  const torch::nn::BatchNorm3d& bn() const {
    return bn_;
  }

  OpLayerOptions options;

private:
  // Inference after fold_batchnorm(): the convolution, then the epilogue
  // (bias, residual, ReLU; epilogue.h). A convolution op that applies the
  // epilogue in its own output loop goes here.
  at::Tensor forward_folded(const at::Tensor& x, const at::Tensor& residual);
  at::Tensor to_outputs(const at::Tensor& y) const;
  NormPtr norm_;
  // The inverse of the last stage's output_index (a gather); undefined
  // without one.
  at::Tensor gather_;
  std::vector<std::vector<at::Tensor>> stages_;
  torch::nn::BatchNorm3d bn_{nullptr};
  at::Tensor bias_; // after folding
  bool folded_ = false;
  std::shared_ptr<LayerExtension> extension_;
};
TORCH_MODULE(OpLayer);

// A one-stage, one-group plan: plain convolution with `kernel`.
inline LayerPlan plain_conv(SubKernel kernel, int64_t out_channels) {
  return {Config::uniform(kernel, out_channels)};
}

} // namespace cakes::nn
