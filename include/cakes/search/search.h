// The search (docs/CAKES.md §4, docs/SEARCH.md), one header per job:
//   candidates.h   candidate sub-kernel sets
//   supernet.h     the super-network and channel subsets
//   importance.h   |gamma| importances and the cost-priority L1 term
//   performance.h  the performance-priority steps
//   budget.h       MAC cost models
//   latency.h      latency tables and their cost models
//   derive.h       derivation of a configuration (per layer or under a budget)
//   inherit.h      the derived network with inherited weights
//   run.h          running a search and its checkpoints
// Library code never prints; errors are std::invalid_argument /
// std::runtime_error with one-line messages.
#pragma once

#include "cakes/search/budget.h"
#include "cakes/search/candidates.h"
#include "cakes/search/derive.h"
#include "cakes/search/importance.h"
#include "cakes/search/inherit.h"
#include "cakes/search/latency.h"
#include "cakes/search/performance.h"
#include "cakes/search/run.h"
#include "cakes/search/supernet.h"
