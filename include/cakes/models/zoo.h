// Networks by name, behind one handle, for the CLI and the trainer.
//
// Names: i3d_resnet18, i3d_resnet34, i3d_resnet50, i3d_resnet101 (video, input
// (N, 3, T, H, W)), res_encoder_decoder (volumetric, input (N, C, D, H, W)).
#pragma once

#include "cakes/models/cost.h"
#include "cakes/nn/op_spec.h"

#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cakes::models {

struct ModelArgs {
  std::string network = "i3d_resnet50";
  OpSpec op;
  int64_t num_classes = 174;
  int64_t in_channels = 1; // volumetric networks only (video is RGB)
  // Base width (first stage / stem); 0 = the network's default (I3D 64,
  // encoder-decoder 16).
  int64_t width = 0;
};

struct Model {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::function<CostReport(const std::vector<int64_t>&)> cost;
  std::function<void()> fold_batchnorm;
  bool video = true;
  int64_t in_channels = 3;
};

// Throws std::invalid_argument (one line) on an unknown network or a spec that
// does not fit it.
Model make_model(const ModelArgs& args);
std::vector<std::string> network_names();
// The operation positions of a network, in configuration order.
std::vector<Position> network_positions(const ModelArgs& args);

} // namespace cakes::models
