// Command-line description of a network, shared by `cakes train`, `eval`,
// `infer`, `info` and `bench model`: --net/--op/--config/--preset/--width
// turned into a models::NetworkSpec (which checkpoints record).
#pragma once

#include "cakes/models/network_spec.h"

#include <CLI/CLI.hpp>

#include <string>

namespace cakes::cli {

struct NetOptions {
  std::string net; // empty: the one --config records, else i3d_resnet50
  std::string op = "conv3d";
  std::string preset, config;
  int64_t width = 0; // base width; 0 = the network's default
};

void add_net_options(CLI::App* cmd, NetOptions& options);

// The network the options describe. `op_given`: whether --op was on the
// command line (a configuration then must agree with it). Throws
// std::invalid_argument (one line) on --preset with --config, or a
// configuration written for another network or operation.
models::NetworkSpec resolve_network(
    const NetOptions& options,
    bool op_given,
    int64_t num_classes,
    int64_t in_channels);

// "cakes 3x3x3:..." for the operation and where its configuration came from.
std::string
op_label(const NetOptions& options, const models::NetworkSpec& spec);

} // namespace cakes::cli
