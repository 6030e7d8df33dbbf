// How a layer normalises its channels.
//
// Every OpLayer owns a torch::nn::BatchNorm3d child named "bn": its scale,
// shift and running statistics are the layer's, whatever computes with them,
// so checkpoints, BatchNorm folding and the search's importances do not depend
// on the norm. A Norm decides how those tensors are used: plain batch
// normalisation (batch_norm(), the default), or, e.g., statistics synchronized
// across processes (cakes::dist::sync_batch_norm). Networks take one Norm and
// hand it to every layer they build, so a choice made when the network is
// built reaches every normalisation in it.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace cakes::nn {

// The tensors of one normalisation, one entry per channel (all of a layer's
// channels, or a subset of them; see OpLayerImpl::normalize).
struct NormTensors {
  at::Tensor weight, bias; // undefined when the BatchNorm is not affine
  // Updated in place in training mode (running = (1 - momentum) * running +
  // momentum * batch statistic, the variance unbiased).
  at::Tensor running_mean, running_var;
  double momentum = 0.1;
  double eps = 1e-5;
  bool training = false;
};

class Norm {
public:
  virtual ~Norm() = default;
  // x (N, C, ...) with C = the number of entries in `t` -> normalised x,
  // differentiable with respect to x, weight and bias. Throws
  // std::invalid_argument when training mode has one value per channel.
  virtual at::Tensor forward(const at::Tensor& x, NormTensors& t) const = 0;
  virtual std::string name() const = 0;
};
using NormPtr = std::shared_ptr<const Norm>;

// torch::nn::BatchNorm3d's computation (torch::batch_norm).
NormPtr batch_norm();

} // namespace cakes::nn
