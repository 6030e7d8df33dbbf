#include "cakes/nn/cakes_conv3d.h"

#include "cakes/ops/shrunk_conv3d.h"

#include <torch/nn/init.h>
#include <torch/torch.h>

#include <cmath>

namespace cakes::nn {

CakesConv3dImpl::CakesConv3dImpl(CakesConv3dOptions options_)
    : options(std::move(options_)) {
  reset();
}

void CakesConv3dImpl::reset() {
  TORCH_CHECK(
      options.in_channels() > 0,
      "CakesConv3d: in_channels must be positive, got ",
      options.in_channels());
  TORCH_CHECK(
      options.config().out_channels() > 0,
      "CakesConv3d: configuration '",
      options.config().str(),
      "' has no output channels");
  TORCH_CHECK(
      options.config().output_index().empty(),
      "CakesConv3d: configuration '",
      options.config().str(),
      "' has an output_index; use OpLayer, which applies it");
  weights_.clear();
  for (const auto& g : options.config().groups()) {
    weights_.push_back(register_parameter(
        "weight_" + g.kernel.str(),
        torch::empty(
            {g.channels,
             options.in_channels(),
             g.kernel.d,
             g.kernel.h,
             g.kernel.w})));
  }
  bn_ = register_module(
      "bn", torch::nn::BatchNorm3d(options.config().out_channels()));
  reset_parameters();
}

void CakesConv3dImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& w : weights_) {
    if (w.numel() == 0)
      continue;
    // He initialisation over each channel's own fan-in (C_in * sub-kernel
    // volume): a shrunk channel sees fewer inputs and gets a larger scale.
    const double fan_in = static_cast<double>(w.numel() / w.size(0));
    w.normal_(0.0, std::sqrt(2.0 / fan_in));
  }
}

torch::Tensor CakesConv3dImpl::conv(const torch::Tensor& x) const {
  const auto& s = options.stride();
  const auto& d = options.dilation();
  return ops::shrunk_conv3d(
      x, weights_, {s[0], s[1], s[2]}, {d[0], d[1], d[2]});
}

torch::Tensor CakesConv3dImpl::forward(const torch::Tensor& x) {
  auto h = conv(x);
  auto y = batch_norm_override ? batch_norm_override(*bn_, h) : bn_(h);
  return options.relu() ? torch::relu(y) : y;
}

} // namespace cakes::nn
