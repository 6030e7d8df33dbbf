// Derivation of a configuration from a trained super-network
// (docs/CAKES.md §4, docs/SEARCH.md).
#pragma once

#include "cakes/search/budget.h"
#include "cakes/search/supernet.h"

#include <optional>
#include <string>
#include <vector>

namespace cakes::search {

struct Derivation {
  std::vector<std::vector<int64_t>> kept;   // per searched layer, ascending
  std::vector<std::vector<int64_t>> counts; // [layer][candidate]
  std::vector<Config> configs;              // one per position (all of them)
  double cost = 0;                          // in the cost model's unit
  double importance = 0;                    // sum of kept |gamma|
};

// Per layer the C_out channels with the largest importance (a summed layer:
// per output index the candidate with the largest importance); ties go to the
// cheaper candidate, then the lower index. Without `budget`, that is
// docs/CAKES.md §4 (widths preserved). With `budget` (cost model units),
// channels are chosen across all layers by importance per unit of cost (a
// Lagrangian relaxation: the same choice made on importance - lambda * cost),
// never above it and as close to it as the choice allows: lambda > 0, the
// smallest that meets it, when the plain choice costs more; lambda < 0, the
// most negative that still meets it, when the plain choice costs less (the
// budget is spent on the channels whose costlier candidates matter most; a
// budget above the all-costliest network gives that network). Throws
// std::invalid_argument when the budget is below the all-cheapest-candidate
// cost. A summed layer's derived configuration records, in its output_index,
// that its kept channel n*C_out + j belongs at output j.
Derivation derive(
    const SuperNet& net,
    const std::vector<std::vector<double>>& importance,
    const CostModel& cost,
    std::optional<double> budget = std::nullopt);

// Derivation by importance with costs proportional to kernel volume (ties to
// the cheaper candidate, no budget): what `cakes search` writes and what the
// search evaluates after every epoch.
Derivation derive_by_volume(const SuperNet& net);

// The derived network's configuration file (docs/CONFIGS.md).
std::string config_json(const SuperNet& net, const Derivation& d);

} // namespace cakes::search
