// Cost of a layer and of a network, counted from the layer shapes
// (docs/CAKES.md §8–9).
//
// MACs count convolutions and the classifier (what the published table counts);
// BatchNorm, ReLU, pooling, up-sampling and residual additions are not counted.
// Parameters are the module's own parameters: conv weights, BatchNorm scale and
// shift (running statistics are buffers, not counted), classifier weight+bias.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cakes {

struct LayerCost {
  std::string name;      // module path, e.g. "layer1.0.conv2"
  std::string operation; // e.g. "conv 1x1x1", "cakes 3x3x3:28,1x3x3:35,3x1x1:1"
  std::vector<int64_t> output_shape;
  int64_t macs = 0;
  int64_t params = 0;
};

struct CostReport {
  std::vector<LayerCost> layers;
  int64_t total_macs() const {
    int64_t s = 0;
    for (const auto& l : layers)
      s += l.macs;
    return s;
  }
  int64_t total_params() const {
    int64_t s = 0;
    for (const auto& l : layers)
      s += l.params;
    return s;
  }
};

} // namespace cakes
