// Costs of a derivation (docs/SEARCH.md): per-channel cost of each candidate
// at each searched layer, in MACs (here) or milliseconds (latency.h).
#pragma once

#include "cakes/search/supernet.h"

#include <string>
#include <vector>

namespace cakes::search {

// Per-channel cost of each candidate at each searched layer plus the cost of
// everything that does not depend on the derivation (stem, 1x1 convs and
// readers at their derived width, classifier).
struct CostModel {
  std::string unit;                      // "MACs" or "ms"
  std::vector<std::vector<double>> cost; // [layer][candidate], per channel
  double fixed = 0;
  double reference = 0; // the all-3x3x3 network in the same unit
  double total(const std::vector<std::vector<int64_t>>& counts) const;
  // The all-cheapest-candidate cost: the lowest any derivation reaches.
  double minimum(const std::vector<int64_t>& widths) const;
};

// MACs for an input of `input_sizes` (N, C, D, H, W), from the network's cost
// report.
CostModel mac_cost_model(const SuperNet& net, std::vector<int64_t> input_sizes);

// Costs proportional to kernel volume (what derive_by_volume uses).
CostModel volume_cost_model(const SuperNet& net);

} // namespace cakes::search
