// Latency tables (docs/SEARCH.md): measured per-layer, per-candidate times of
// a super-network's layers on this machine, and the cost model derived from
// them for deriving under a latency budget.
#pragma once

#include "cakes/search/budget.h"
#include "cakes/search/supernet.h"

#include <string>
#include <vector>

namespace cakes::search {

// Per searched layer and candidate, milliseconds of a forward pass of that
// layer with C_out channels of the candidate alone, and the rest of the
// network (measured whole-network time minus the modelled layers).
struct LatencyTable {
  std::string network;
  int64_t width = 0; // network base width
  std::vector<SubKernel> candidates;
  std::vector<int64_t> input_sizes;
  int threads = 0;
  std::vector<std::string> layers;
  std::vector<std::vector<double>> layer_ms; // [layer][candidate], C_out chans
  double rest_ms = 0;
  double reference_ms = 0; // all-3x3x3 network, modelled
  std::string json() const;
  // Throws std::invalid_argument on malformed text.
  static LatencyTable parse(const std::string& json_text);
};

// Measures the table on this machine (median of `repeats` timed runs each).
// Selects sub-networks of `net` while measuring and restores the full
// super-network (and its train/eval mode) before returning.
LatencyTable measure_latency(
    SuperNet& net, std::vector<int64_t> input_sizes, int repeats = 5);

// Throws std::invalid_argument when the table was measured for another
// network, width, candidate set or layer list.
CostModel latency_cost_model(const SuperNet& net, const LatencyTable& table);

} // namespace cakes::search
