// Weight inheritance: the derived network with the super-network's weights.
#pragma once

#include "cakes/search/derive.h"
#include "cakes/search/supernet.h"

namespace cakes::search {

// Builds the derived network and copies the super-network's kept channels into
// it, layer by layer: each searched layer's kept conv filters and BatchNorm
// entries (scale, shift, statistics), its reader's matching input columns, and
// every other parameter and buffer as it is. In eval mode its output equals
// the super-network's with the dropped channels' BatchNorm outputs zeroed.
models::Model inherit(const SuperNet& net, const Derivation& d);

} // namespace cakes::search
