// The networks by name: i3d_resnet18, i3d_resnet34, i3d_resnet50,
// i3d_resnet101 (video, input (N, 3, T, H, W)) and res_encoder_decoder
// (volumes, input (N, C, D, H, W)). models::build (model.h) builds them.
#pragma once

#include "cakes/nn/op_spec.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cakes::models {

struct NetworkSpec;

struct NetworkInfo {
  std::string name;
  bool video = true;
  int64_t default_width = 64;
  std::vector<SubKernel> candidates; // the operation's default candidate set
};

std::vector<std::string> network_names();
// nullptr for an unknown name.
const NetworkInfo* find_network(const std::string& name);
// Throws std::invalid_argument listing the known networks on an unknown name.
const NetworkInfo& network_info(const std::string& name);
// The operation positions of a network, in configuration order.
std::vector<Position> network_positions(const NetworkSpec& spec);

} // namespace cakes::models
