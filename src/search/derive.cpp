#include "cakes/search/derive.h"

#include "cakes/search/importance.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace cakes::search {
namespace {

int64_t n_candidates(const SuperNet& net) {
  return static_cast<int64_t>(net.candidates.size());
}

} // namespace

namespace {

// Per layer the top C_out of importance - lambda * cost (ties: cheaper, then
// lower index).
Derivation pick(
    const SuperNet& net,
    const std::vector<std::vector<double>>& imp,
    const CostModel& cm,
    double lambda) {
  Derivation d;
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const int64_t c = net.layers[l].width, total = n_candidates(net) * c;
    if (int64_t(imp.at(l).size()) != total)
      throw std::invalid_argument(
          "derive: layer " + net.layers[l].name + " has " +
          std::to_string(imp[l].size()) + " importances, expected " +
          std::to_string(total));
    auto cost = [&](int64_t i) { return cm.cost[l][i / c]; };
    auto score = [&](int64_t i) { return imp[l][i] - lambda * cost(i); };
    auto better = [&](int64_t a, int64_t b) {
      const double sa = score(a), sb = score(b);
      if (sa != sb)
        return sa > sb;
      if (cost(a) != cost(b))
        return cost(a) < cost(b);
      return a < b;
    };
    std::vector<int64_t> idx;
    if (net.layers[l].summed) {
      // One candidate per output index j: the best of {n*c + j}.
      for (int64_t j = 0; j < c; ++j) {
        int64_t best = j;
        for (int64_t n = 1; n < n_candidates(net); ++n)
          if (better(n * c + j, best))
            best = n * c + j;
        idx.push_back(best);
      }
    } else {
      idx.resize(size_t(total));
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), better);
      idx.resize(size_t(c));
    }
    std::sort(idx.begin(), idx.end());
    std::vector<int64_t> counts(n_candidates(net), 0);
    for (auto i : idx) {
      ++counts[i / c];
      d.importance += imp[l][i];
    }
    d.kept.push_back(idx);
    d.counts.push_back(counts);
  }
  d.cost = cm.total(d.counts);
  return d;
}

} // namespace

Derivation derive(
    const SuperNet& net,
    const std::vector<std::vector<double>>& imp,
    const CostModel& cm,
    std::optional<double> budget) {
  if (imp.size() != net.layers.size() || cm.cost.size() != net.layers.size())
    throw std::invalid_argument("derive: one entry per searched layer needed");
  Derivation best = pick(net, imp, cm, 0);
  if (budget && best.cost != *budget) {
    std::vector<int64_t> widths;
    for (const auto& l : net.layers)
      widths.push_back(l.width);
    const double lowest = cm.minimum(widths);
    if (*budget < lowest) {
      std::ostringstream m;
      m << "budget " << *budget << " " << cm.unit
        << " is infeasible: the cheapest derivation (every channel on the "
           "cheapest candidate) costs "
        << lowest << " " << cm.unit;
      throw std::invalid_argument(m.str());
    }
    // Costs scaled so that lambda's range is independent of the unit.
    double max_cost = 0;
    for (const auto& c : cm.cost)
      for (double v : c)
        max_cost = std::max(max_cost, v);
    CostModel scaled = cm;
    for (auto& c : scaled.cost)
      for (auto& v : c)
        v /= max_cost;
    // The total cost falls as lambda grows. Over budget: the smallest
    // lambda > 0 that meets it. Under budget (importance alone picks cheap
    // kernels, e.g. 6 of the 7 volumetric candidates are 1/3 or 1/9 of
    // 3x3x3): the most negative lambda that still meets it, so that the
    // budget a user asks for is spent on the channels whose costlier
    // candidates matter most instead of being left unused.
    const bool over = best.cost > *budget;
    const double sign = over ? 1.0 : -1.0;
    double lo = 1e-9, hi = 1e12; // |lambda|: lo on the plain side of the budget
    const auto far = pick(net, imp, scaled, sign * hi);
    if (over) {
      best = far; // every channel on its cheapest candidate: fits (>= lowest)
    } else if (cm.total(far.counts) <= *budget) {
      best = far; // even every channel on its costliest candidate fits
      lo = hi;
    }
    for (int it = 0; it < 100 && lo < hi; ++it) {
      const double mid = std::sqrt(lo * hi);
      auto d = pick(net, imp, scaled, sign * mid);
      const bool fits = cm.total(d.counts) <= *budget;
      // Over budget, fitting moves toward the plain pick (smaller |lambda|);
      // under it, fitting allows a larger |lambda|.
      if (fits == over)
        hi = mid;
      else
        lo = mid;
      if (fits && (over || cm.total(d.counts) >= cm.total(best.counts)))
        best = d;
    }
    best.cost = cm.total(best.counts);
  }
  best.configs.resize(net.positions.size());
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const auto& L = net.layers[l];
    std::vector<KernelGroup> groups;
    for (size_t n = 0; n < net.candidates.size(); ++n)
      groups.push_back({net.candidates[n], best.counts[l][n]});
    // The derived layer's groups are contiguous, in the order of the kept
    // global indices (candidate-major); a summed layer's kept channel n*c + j
    // belongs at output j.
    std::vector<int64_t> output_index;
    if (L.summed)
      for (auto i : best.kept[l])
        output_index.push_back(i % L.width);
    best.configs[L.position] = Config(groups, output_index);
  }
  return best;
}

std::string config_json(const SuperNet& net, const Derivation& d) {
  // The network and width it was derived for: `cakes info --config FILE`
  // and `train --config FILE` build that network without --net/--width.
  std::string s =
      "{\n  \"network\": \"" + net.model.spec.network +
      "\",\n  \"width\": " + std::to_string(net.model.spec.canonical().width) +
      ",\n  \"op\": \"cakes\",\n  \"blocks\": [\n";
  for (size_t i = 0; i < d.configs.size(); ++i)
    s += "    " + d.configs[i].json() +
         (i + 1 < d.configs.size() ? ",\n" : "\n");
  return s + "  ]\n}\n";
}

Derivation derive_by_volume(const SuperNet& net) {
  return derive(net, importance(net), volume_cost_model(net));
}

} // namespace cakes::search
