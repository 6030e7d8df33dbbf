// NetworkSpec: what a network is, as data — enough to build it again
// (models::build) and to decide whether weights fit it. Checkpoints store it
// (train/checkpoint.h), so a checkpoint names the network it holds and a model
// can be rebuilt from the checkpoint alone.
//
// JSON form (to_json / from_json; keys may be added, unknown keys are ignored):
//   {"network": "i3d_resnet18", "width": 16, "num_classes": 4,
//    "in_channels": 3, "op": "cakes",
//    "candidates": ["3x3x3", "1x3x3", "3x1x1"],
//    "configs": [{"3x3x3": 6, "1x3x3": 5, "3x1x1": 5}, ...]}
// "configs" (one per operation position, docs/CONFIGS.md) is left out when
// the operation takes none.
#pragma once

#include "cakes/models/network_config.h"
#include "cakes/nn/op_spec.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cakes::models {

struct NetworkSpec {
  std::string network = "i3d_resnet50"; // network_names()
  // Base width (stem and first stage); 0 = the network's default (I3D 64,
  // encoder-decoder 16).
  int64_t width = 0;
  int64_t num_classes = 174;
  // Input channels: 3 for video networks (RGB), one per modality for
  // volumes; 0 = the network's default (video 3, volumes 1).
  int64_t in_channels = 0;
  OpSpec op; // operation, per-position configurations, candidates

  // Whether the network takes video clips (N, 3, T, H, W), else volumes
  // (N, C, D, H, W). Throws std::invalid_argument on an unknown network.
  bool video() const;

  // Defaults made explicit: width, candidates (the network's own set) and
  // in_channels (always 3 for video). Two specs describe the same network
  // exactly when their canonical forms are equal.
  NetworkSpec canonical() const;

  std::string to_json() const;
  // Throws std::invalid_argument (one line) on malformed JSON, a missing key
  // or a bad configuration.
  static NetworkSpec from_json(const std::string& text);

  // One line, e.g. "i3d_resnet18 width 16, 4 classes, op cakes
  // [3x3x3:6,1x3x3:5,3x1x1:5 ...]".
  std::string describe() const;
};

// Equal canonical forms.
bool operator==(const NetworkSpec& a, const NetworkSpec& b);
bool operator!=(const NetworkSpec& a, const NetworkSpec& b);

// Why weights of `saved` do not fit `wanted`: the first difference, e.g.
// "width 16 vs 64"; empty when the two are the same network.
std::string difference(const NetworkSpec& saved, const NetworkSpec& wanted);

// `spec` with the operation and configurations of `config` (a configuration
// file or preset named `what` in messages). Throws std::invalid_argument when
// the file is for another network, or, when `op_given`, another operation
// than spec.op.op.
NetworkSpec with_config(
    NetworkSpec spec,
    const NetworkConfig& config,
    const std::string& what,
    bool op_given);

} // namespace cakes::models
