// The optimizers training uses (SGD with momentum, AdamW), their parameter
// groups, and access to their per-parameter state.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace cakes::train {

enum class OptimizerKind { sgd, adamw };
// "sgd", "adamw"; throws std::invalid_argument otherwise.
OptimizerKind parse_optimizer_kind(const std::string& text);

struct OptimizerSettings {
  OptimizerKind kind = OptimizerKind::sgd;
  double momentum = 0.9;      // sgd
  bool nesterov = false;      // sgd
  double weight_decay = 3e-4; // applied to the "decay" group only
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8; // adamw
};

// Parameters split for weight decay: tensors of dim <= 1 (BatchNorm scales
// and shifts, biases) or named "*bias" get none (docs/CAKES.md §4).
struct ParameterSplit {
  std::vector<std::string> decay;
  std::vector<std::string> no_decay;
};
ParameterSplit split_for_weight_decay(const torch::nn::Module& module);

// The optimizer over `module`'s trainable parameters: group 0 decays, group 1
// does not (ParameterSplit), both at learning rate `lr`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const torch::nn::Module& module,
    const OptimizerSettings& settings,
    double lr);

// The optimizer's state tensors for parameter `param` that have its shape
// (SGD: the momentum buffer; Adam/AdamW: both moments and the max of the
// second; undefined where the optimizer keeps none), in a fixed order; empty
// before the first step that updates `param`. Throws std::invalid_argument
// for an optimizer other than SGD, Adam and AdamW.
std::vector<at::Tensor>
parameter_state(torch::optim::Optimizer& optimizer, const at::Tensor& param);

} // namespace cakes::train
