// CakesConv3d: the CAKES layer (SPEC §2) — shrunk convolution over all groups,
// one BatchNorm over every output channel, then ReLU.
#pragma once

#include "cakes/nn/config.h"

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/pimpl.h>

#include <array>
#include <functional>

namespace cakes::nn {

using Triple = std::array<int64_t, 3>;

struct CakesConv3dOptions {
  CakesConv3dOptions(int64_t in_channels, Config config)
      : in_channels_(in_channels), config_(std::move(config)) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(Config, config);
  TORCH_ARG(Triple, stride) = {1, 1, 1};
  TORCH_ARG(Triple, dilation) = {1, 1, 1};
  // The basic-block position is followed by BN then the residual add, with the
  // ReLU after the add; such callers turn it off here.
  TORCH_ARG(bool, relu) = true;
};

class CakesConv3dImpl : public torch::nn::Cloneable<CakesConv3dImpl> {
 public:
  CakesConv3dImpl(int64_t in_channels, Config config)
      : CakesConv3dImpl(CakesConv3dOptions(in_channels, std::move(config))) {}
  explicit CakesConv3dImpl(CakesConv3dOptions options);

  void reset() override;
  void reset_parameters();

  // (N, C_in, D, H, W) -> (N, C_out, D', H', W').
  torch::Tensor forward(const torch::Tensor& x);
  // The convolution alone, before BatchNorm and ReLU.
  torch::Tensor conv(const torch::Tensor& x) const;

  const Config& config() const {
    return options.config();
  }
  // Group weights in configuration order; weight i is registered as
  // "weight_<DxHxW>" (e.g. "weight_1x3x3").
  const std::vector<torch::Tensor>& weights() const {
    return weights_;
  }
  torch::nn::BatchNorm3d& bn() {
    return bn_;
  }

  CakesConv3dOptions options;
  // When set, forward calls it instead of bn() (same module, parameters and
  // buffers, so checkpoints are unchanged); cakes::dist sets it for
  // BatchNorm synchronized across processes.
  std::function<torch::Tensor(torch::nn::BatchNorm3dImpl&, const torch::Tensor&)>
      batch_norm_override;

 private:
  std::vector<torch::Tensor> weights_;
  torch::nn::BatchNorm3d bn_{nullptr};
};
TORCH_MODULE(CakesConv3d);

} // namespace cakes::nn
