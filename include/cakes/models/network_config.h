// Network configuration files and the built-in presets (docs/CONFIGS.md).
//
// A file names the network and the operation and gives one sub-kernel split per
// operation position, in block order:
//   {"network": "i3d_resnet50", "op": "cakes",
//    "blocks": [{"3x3x3": 28, "1x3x3": 35, "3x1x1": 1}, ...]}
// Plain data; the count and widths are checked against the network when it is
// built (make_op_factory), the syntax here.
#pragma once

#include "cakes/nn/config.h"

#include <string>
#include <vector>

namespace cakes::models {

struct NetworkConfig {
  std::string network; // e.g. "i3d_resnet50"; empty = any
  std::string op = "cakes";
  std::vector<Config> blocks;
};

// Parses the JSON text; throws std::invalid_argument with one line naming the
// block on a malformed entry or an unknown/invalid sub-kernel.
NetworkConfig parse_network_config(const std::string& json_text);
// Reads and parses a file; the message names the path.
NetworkConfig load_network_config(const std::string& path);

// Built-in presets (configs/i3d_resnet50_ssv1.json, embedded at build time):
// CAKES12D_P, CAKES12D_C, CAKES23D_P, CAKES23D_C, CAKES123D_P, CAKES123D_C.
std::vector<std::string> preset_names();
// Throws std::invalid_argument listing the known names on an unknown one.
NetworkConfig preset(const std::string& name);
// The embedded JSON text, byte for byte (a test compares it with configs/).
const char* embedded_presets_json();

} // namespace cakes::models
