// Channel importance in a super-network and the cost-priority search's L1
// term (docs/CAKES.md §4).
#pragma once

#include "cakes/search/supernet.h"

#include <vector>

namespace cakes::search {

// w_op per candidate: kernel volume over the sum of the set's volumes (27:9:3
// -> 9/13, 3/13, 1/13), or 1 for every candidate without re-weighting.
std::vector<double>
l1_weights(const std::vector<SubKernel>& candidates, bool reweight);

// Cost-priority search: grad(gamma) += sparsity * w_op * sign(gamma) on the
// BatchNorm scales of every searched layer (call after backward). Scales
// without a gradient get one.
void add_l1_subgradient(SuperNet& net, double sparsity, bool reweight);

// |gamma| of each searched layer's BatchNorm, N * C_out values per layer.
std::vector<std::vector<double>> importance(const SuperNet& net);

} // namespace cakes::search
