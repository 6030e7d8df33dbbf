// Command-line description of a network, shared by `cakes train`, `eval`,
// `infer`, `info` and `bench model`: --net/--op/--config/--preset/--width
// turned into a models::NetworkSpec (which checkpoints record).
#pragma once

#include "cakes/models/model.h"
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

// --dropout P for commands that train (train, search): the probability of
// every dropout of the network during training (I3D's before its classifier;
// the encoder-decoder has none). < 0: the network's own (I3D: 0.3). Not
// part of the network's description: evaluation does not drop anything.
void add_dropout_option(CLI::App* cmd, double& dropout);
// Sets it on every torch::nn::Dropout of `model` when dropout >= 0; throws
// std::invalid_argument when it is not below 1.
void apply_dropout(const models::Model& model, double dropout);

// "cakes 3x3x3:..." for the operation and where its configuration came from.
std::string
op_label(const NetOptions& options, const models::NetworkSpec& spec);

} // namespace cakes::cli
