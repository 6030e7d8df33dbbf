// Command-line description of a network, shared by `cakes train`, `eval` and
// `infer`: one place that turns --net/--op/--config/--preset/--width into
// models::ModelArgs, and into the network string checkpoints record.
#pragma once

#include "cakes/models/zoo.h"

#include <CLI/CLI.hpp>

#include <string>

namespace cakes::cli {

struct NetOptions {
  std::string net = "i3d_resnet50";
  std::string op = "conv3d";
  std::string preset, config;
  int64_t width = 0; // base width; 0 = the network's default
};

void add_net_options(CLI::App* cmd, NetOptions& options);

// The ModelArgs the options describe. `op_given`: whether --op was on the
// command line (a configuration then must agree with it). Throws
// std::invalid_argument (one line) on --preset with --config, or a
// configuration written for another network or operation.
models::ModelArgs resolve_model_args(
    const NetOptions& options,
    bool op_given,
    int64_t num_classes,
    int64_t in_channels);

// What a checkpoint records, e.g. "i3d_resnet18 width 16 classes 4 op cakes
// [3x3x3:6,1x3x3:5,3x1x1:5 ...]": equal strings mean loadable weights.
std::string network_id(const models::ModelArgs& args);

} // namespace cakes::cli
