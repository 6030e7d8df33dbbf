#include "cakes/train/optimizer.h"

#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <stdexcept>

namespace cakes::train {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool wants_no_decay(const std::string& name, const at::Tensor& p) {
  return p.dim() <= 1 || ends_with(name, "bias");
}

} // namespace

OptimizerKind parse_optimizer_kind(const std::string& text) {
  if (text == "sgd")
    return OptimizerKind::sgd;
  if (text == "adamw")
    return OptimizerKind::adamw;
  throw std::invalid_argument(
      "unknown optimizer '" + text + "' (expected sgd or adamw)");
}

ParameterSplit split_for_weight_decay(const torch::nn::Module& module) {
  ParameterSplit split;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad())
      continue;
    (wants_no_decay(item.key(), item.value()) ? split.no_decay : split.decay)
        .push_back(item.key());
  }
  return split;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const torch::nn::Module& module, const OptimizerSettings& o, double lr) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad())
      continue;
    (wants_no_decay(item.key(), item.value()) ? no_decay : decay)
        .push_back(item.value());
  }
  if (o.kind == OptimizerKind::sgd) {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(
        decay,
        std::make_unique<torch::optim::SGDOptions>(
            torch::optim::SGDOptions(lr)
                .momentum(o.momentum)
                .nesterov(o.nesterov)
                .weight_decay(o.weight_decay)));
    groups.emplace_back(
        no_decay,
        std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr)
                                                       .momentum(o.momentum)
                                                       .nesterov(o.nesterov)
                                                       .weight_decay(0)));
    return std::make_unique<torch::optim::SGD>(
        groups, torch::optim::SGDOptions(lr).momentum(o.momentum));
  }
  auto make = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(lr)
            .betas({o.beta1, o.beta2})
            .eps(o.eps)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, make(o.weight_decay));
  groups.emplace_back(no_decay, make(0));
  return std::make_unique<torch::optim::AdamW>(
      groups, torch::optim::AdamWOptions(lr));
}

std::vector<at::Tensor>
parameter_state(torch::optim::Optimizer& optimizer, const at::Tensor& param) {
  // LibTorch keys an optimizer's state by the parameter's TensorImpl (as its
  // own serialization does, torch/optim/serialize.h); this is the one place
  // that relies on it.
  const auto it =
      optimizer.state().find(c10::guts::to_string(param.unsafeGetTensorImpl()));
  if (it == optimizer.state().end())
    return {};
  auto* s = it->second.get();
  if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(s))
    return {sgd->momentum_buffer()};
  if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(s))
    return {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()};
  if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(s))
    return {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()};
  throw std::invalid_argument(
      "cannot read this optimizer's per-parameter state (SGD, Adam and AdamW "
      "are supported)");
}

} // namespace cakes::train
