// The one handle on a model: what it is (NetworkSpec), its module (parameters,
// buffers, train/eval mode, save/load) and its forward. Training, evaluation,
// search and the CLI all take this handle.
#pragma once

#include "cakes/models/network.h"
#include "cakes/models/network_spec.h"
#include "cakes/nn/norm.h"

#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <stdexcept>

namespace cakes::models {

struct Model {
  NetworkSpec spec;
  std::shared_ptr<torch::nn::Module> module;
  // Our networks (null for a module wrapped with wrap()).
  std::shared_ptr<Network> network;
  std::function<at::Tensor(const at::Tensor&)> forward;

  // Throws std::logic_error for a wrapped module (no network description).
  CostReport cost(const std::vector<int64_t>& input_sizes) const;
  void fold_batchnorm() const;
  // Input sizes (batch, C, frames or depth, size, size) for this network.
  std::vector<int64_t> input_sizes(
      int64_t batch,
      int64_t frames_or_depth,
      int64_t height,
      int64_t width) const;

  // Any module holder whose Impl has forward(Tensor) -> Tensor (tests, other
  // networks); `spec.network` names it, checkpoints record it.
  template <class Holder> static Model wrap(Holder holder, NetworkSpec spec) {
    Model m;
    m.spec = std::move(spec);
    m.module = holder.ptr();
    m.forward = [holder](const at::Tensor& x) mutable {
      return holder->forward(x);
    };
    return m;
  }
};

struct BuildOptions {
  // The norm of every layer (nn/norm.h); null: batch_norm().
  nn::NormPtr norm;
};

// Builds the network `spec` describes (zoo.h names the networks). Throws
// std::invalid_argument (one line) on an unknown network or a spec that does
// not fit it.
Model build(const NetworkSpec& spec, const BuildOptions& options = {});

} // namespace cakes::models
