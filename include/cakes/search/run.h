// Running a search: training the super-network in C or P mode
// (docs/CAKES.md §4) with the library's Trainer, and its checkpoints.
#pragma once

#include "cakes/search/supernet.h"
#include "cakes/train/trainer.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace cakes::search {

// What a search checkpoint records besides its network (the super-network's
// NetworkSpec, whose op is "super" with the candidates): the "search" section
// of the checkpoint's metadata (train/checkpoint.h).
struct SearchMeta {
  std::string mode = "C";           // "C" or "P"
  std::vector<int64_t> input_sizes; // for costs: (N, C, D, H, W)
  std::string section_json() const;
};

// Throws std::runtime_error "FILE is not a search checkpoint (...)" when the
// checkpoint holds no super-network.
SearchMeta read_search_meta(const std::string& checkpoint_path);
// Rebuilds the super-network and loads the checkpoint's weights.
SuperNet load_search_checkpoint(const std::string& path, SearchMeta* meta);

struct SearchOptions {
  std::string mode = "C"; // "C" (cost-priority) or "P" (performance-priority)
  double sparsity = 1e-4; // C: the L1 strength s
  bool reweight = true;   // C: w_op by kernel volume, else 1
  uint64_t seed = 0;      // P: the channel subsets
  std::vector<int64_t> input_sizes; // recorded for derive's costs
  // after_backward, after_step and validate are set here;
  // checkpoint_sections gains "search".
  train::TrainerOptions trainer;
};

// Trains the super-network. `validate`, when given, runs after every epoch
// with the super-network restricted to its currently derived sub-network
// (derive_by_volume) in eval mode. Throws std::invalid_argument on an unknown
// mode.
std::vector<train::EpochSummary> run_search(
    SuperNet& net,
    train::Loader& loader,
    train::LossFn loss,
    SearchOptions options,
    std::function<std::map<std::string, double>(const models::Model&)>
        validate = {});

} // namespace cakes::search
