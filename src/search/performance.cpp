#include "cakes/search/performance.h"

#include "cakes/train/optimizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace cakes::search {
namespace {

std::vector<int64_t>
complement(const std::vector<int64_t>& kept, int64_t total) {
  std::vector<bool> in(size_t(total), false);
  for (auto i : kept)
    in.at(size_t(i)) = true;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < total; ++i)
    if (!in[size_t(i)])
      out.push_back(i);
  return out;
}

} // namespace

std::vector<std::vector<int64_t>>
select_random(SuperNet& net, std::mt19937_64& rng) {
  const auto n = int64_t(net.candidates.size());
  std::vector<std::vector<int64_t>> kept;
  for (const auto& l : net.layers) {
    if (l.summed) {
      std::uniform_int_distribution<int64_t> candidate(0, n - 1);
      std::vector<int64_t> k;
      for (int64_t j = 0; j < l.width; ++j)
        k.push_back(candidate(rng) * l.width + j);
      std::sort(k.begin(), k.end());
      kept.push_back(std::move(k));
      continue;
    }
    std::vector<int64_t> all(size_t(n * l.width));
    std::iota(all.begin(), all.end(), 0);
    // Partial Fisher-Yates: the first width entries are a uniform subset.
    for (int64_t i = 0; i < l.width; ++i) {
      std::uniform_int_distribution<int64_t> pick(i, int64_t(all.size()) - 1);
      std::swap(all[size_t(i)], all[size_t(pick(rng))]);
    }
    all.resize(size_t(l.width));
    std::sort(all.begin(), all.end());
    kept.push_back(std::move(all));
  }
  select(net, kept);
  return kept;
}

DroppedChannels::DroppedChannels(
    const SuperNet& net,
    const std::vector<std::vector<int64_t>>& kept,
    torch::optim::Optimizer& optimizer)
    : optimizer_(&optimizer) {
  if (kept.size() != net.layers.size())
    throw std::invalid_argument(
        "DroppedChannels: one index list per searched layer");
  torch::NoGradGuard no_grad;
  auto save =
      [&](const at::Tensor& p, int64_t dim, const std::vector<int64_t>& idx) {
        if (idx.empty())
          return;
        Slice s;
        s.param = p;
        s.dim = dim;
        s.index = torch::tensor(idx, torch::kLong);
        s.value = p.index_select(dim, s.index);
        const auto state = train::parameter_state(optimizer, p);
        s.had_state = !state.empty();
        for (const auto& t : state)
          s.state.push_back(
              t.defined() ? t.index_select(dim, s.index) : at::Tensor());
        slices_.push_back(std::move(s));
      };
  const auto n = int64_t(net.candidates.size());
  for (size_t l = 0; l < kept.size(); ++l) {
    const auto& L = net.layers[l];
    const int64_t c = L.width;
    const auto dropped = complement(kept[l], n * c);
    const auto& bn = L.layer->bn();
    save(bn->weight, 0, dropped);
    save(bn->bias, 0, dropped);
    // Candidate k's weight holds the layer's channels [k*c, (k+1)*c).
    const auto& ws = L.layer->stages().back();
    for (size_t k = 0; k < ws.size(); ++k) {
      std::vector<int64_t> local;
      for (auto i : dropped)
        if (i / c == int64_t(k))
          local.push_back(i - int64_t(k) * c);
      save(ws[k], 0, local);
    }
    if (!L.summed)
      for (const auto& w : L.reader->stages().front())
        save(w, 1, dropped);
  }
}

void DroppedChannels::restore() {
  torch::NoGradGuard no_grad;
  for (auto& s : slices_) {
    s.param.index_copy_(s.dim, s.index, s.value);
    const auto state = train::parameter_state(*optimizer_, s.param);
    for (size_t k = 0; k < state.size(); ++k) {
      if (!state[k].defined())
        continue;
      if (s.had_state && k < s.state.size() && s.state[k].defined())
        state[k].index_copy_(s.dim, s.index, s.state[k]);
      else
        state[k].index_fill_(s.dim, s.index, 0);
    }
  }
}

} // namespace cakes::search
