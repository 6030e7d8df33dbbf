#include "cakes/search/importance.h"

#include <torch/torch.h>

namespace cakes::search {

std::vector<double>
l1_weights(const std::vector<SubKernel>& candidates, bool reweight) {
  double total = 0;
  for (const auto& k : candidates)
    total += double(k.volume());
  std::vector<double> w;
  for (const auto& k : candidates)
    w.push_back(reweight ? double(k.volume()) / total : 1.0);
  return w;
}

void add_l1_subgradient(SuperNet& net, double sparsity, bool reweight) {
  const auto w = l1_weights(net.candidates, reweight);
  const auto n = int64_t(net.candidates.size());
  torch::NoGradGuard no_grad;
  for (auto& l : net.layers) {
    auto& gamma = l.layer->bn()->weight;
    if (!gamma.grad().defined())
      gamma.mutable_grad() = torch::zeros_like(gamma);
    auto coef = torch::empty_like(gamma);
    for (int64_t c = 0; c < n; ++c)
      coef.narrow(0, c * l.width, l.width).fill_(sparsity * w[size_t(c)]);
    gamma.mutable_grad().add_(coef * gamma.sign());
  }
}

std::vector<std::vector<double>> importance(const SuperNet& net) {
  std::vector<std::vector<double>> out;
  for (const auto& l : net.layers) {
    const auto g =
        l.layer->bn()->weight.detach().abs().to(torch::kDouble).contiguous();
    out.emplace_back(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  return out;
}

} // namespace cakes::search
