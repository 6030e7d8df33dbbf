// What every network of ours offers besides forward: its cost report, its
// layers by name and BatchNorm folding. Each network describes its structure
// once (a walk over its layers, src/models/walk.h) and both forward and cost
// are that description run on tensors or on shapes.
#pragma once

#include "cakes/nn/cost.h"
#include "cakes/nn/op_layer.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace cakes::models {

class Network {
public:
  virtual ~Network() = default;
  virtual at::Tensor forward(const at::Tensor& x) = 0;
  // Per-layer MACs and parameters for an input of these sizes (N, C, T/D, H,
  // W). Throws std::invalid_argument when the network does not take them.
  virtual CostReport cost(const std::vector<int64_t>& input_sizes) const = 0;
  // Every OpLayer with its module path (e.g. "layer1.0.conv2"), in the order
  // the modules are registered.
  virtual const std::vector<std::pair<std::string, nn::OpLayer>>&
  layers() const = 0;

  // The layer at module path `name`; throws std::invalid_argument naming it
  // when there is none.
  nn::OpLayer layer(const std::string& name) const;
  // Folds every layer's BatchNorm into its convolution (inference only).
  void fold_batchnorm();
};

} // namespace cakes::models
