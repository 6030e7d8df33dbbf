// Weights from elsewhere on the command line (docs/WEIGHTS.md): `cakes
// import` (a file of the paper's code to a cakes checkpoint) and the --init
// flags of `cakes train` and `cakes search`. Kept apart from the commands'
// own flags so that each command adds them with one call.
#pragma once

#include "cakes/models/model.h"

#include <CLI/CLI.hpp>

#include <string>

namespace cakes::cli {

struct InitOptions {
  std::string file;  // --init
  std::string check; // --init-check: {"x", "y"} reference outputs
};

// How many of --net/--op/--config/--preset/--width `command` was given.
size_t net_flags_given(const CLI::App* command);

// Adds --init FILE and --init-check FILE to `command`.
void add_init_flags(CLI::App* command, InitOptions& options);

// Runs `model` (eval mode, no gradients) on the tensor "x" of `reference`
// (a torch.save'd dict {"x": input, "y": logits}) and returns max|out - y| /
// max|y|. Throws std::invalid_argument when the file lacks them or the
// shapes differ.
double relative_difference(models::Model& model, const std::string& reference);

// Prints the difference to `reference`; throws std::runtime_error when it is
// above 1e-4 (the model then does not reproduce the reference).
void check_reference(models::Model& model, const std::string& reference);

// The network to train with --init (docs/WEIGHTS.md), recognised from the
// file: a cakes search checkpoint (the derived network, inheriting the
// super-network's kept channels: the search's derivation, or the one of
// `wanted`'s configuration when --config was given), a cakes checkpoint (its
// network and weights), a file of the paper's code (imported; a search
// super-network of either priority derived and inherited), or a torchvision
// 2D ResNet state dict (inflated into `wanted`). `wanted` is what the flags and
// the data describe; `net_given` says whether --net/--op/--config/--preset/
// --width were given: the network of a checkpoint or paper file must then
// be that one. A classifier for another class count than wanted's is
// re-initialised, with one printed line; any other tensor that does not fit
// is an error naming the key and both shapes. Checks --init-check.
models::Model initial_model(
    const InitOptions& options,
    const models::NetworkSpec& wanted,
    bool net_given);

// --init of `cakes search` (docs/WEIGHTS.md, "Starting a search"): a
// torchvision 2D ResNet state dict inflated into the super-network (every
// candidate the whole kernel, norms and readers repeated per candidate,
// docs/CAKES.md §5); a cakes checkpoint of the same network with op conv3d
// (every candidate the kernel shrunk onto it); or a search super-network of
// the same network and candidates, the paper's or a cakes search.ckpt (its
// tensors). A classifier of another class count is re-initialised, with one
// printed line; anything else is a one-line std::invalid_argument naming
// what is accepted. Does nothing without --init.
void init_supernet(const InitOptions& options, models::Model& supernet);

// The network `spec` describes, built with `options`, holding `from`'s
// tensors, matched by name: nothing is copied unless all fit (their shapes
// are checked first). With `classifier_may_differ` a classifier of another
// shape keeps its new initialisation. `what` names `from` in messages.
models::Model rebuilt(
    const models::Model& from,
    const models::NetworkSpec& spec,
    const models::BuildOptions& options,
    const std::string& what,
    bool classifier_may_differ);

// `cakes import`.
void add_import(CLI::App& app);

} // namespace cakes::cli
