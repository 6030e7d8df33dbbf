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
// of the checkpoint's metadata (train/checkpoint.h). The checkpoint is also a
// trainer checkpoint (optimizer state, epoch, step, generator state,
// schedule, log), written at every epoch end: a search resumes from it.
struct SearchMeta {
  std::string mode = "C";           // "C" or "P"
  std::vector<int64_t> input_sizes; // for costs: (N, C, D, H, W)
  // Every setting that decides the search's result, flag -> value as JSON
  // text (SearchOptions::settings and the options' own); empty in
  // checkpoints of older builds.
  std::map<std::string, std::string> settings;
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
  // The other settings that decide the result (network, candidates, data,
  // batch, ...: the caller's flag -> value as JSON text). They are recorded
  // with --mode, --sparsity, --no-reweight and --seed (set here from the
  // fields above), and a resumed search must be given the same.
  std::map<std::string, std::string> settings;
  // When non-empty: continue the search this checkpoint (written by
  // run_search at an epoch end) holds. With the same settings, threads and
  // seed the result equals that of the uninterrupted search (the trainer's
  // exact resume; P's subsets are drawn from (seed, step)). The schedule
  // follows trainer.allow_schedule_change (Trainer::resume).
  std::string resume_from;
  // Called on the main process after each epoch, once its checkpoint and log
  // line are written.
  std::function<void(const train::EpochSummary&)> on_epoch;
  // after_backward, after_step and validate are set here;
  // checkpoint_sections gains "search".
  train::TrainerOptions trainer;
};

// The importance summary of the search so far: per candidate (keyed
// "kept_<sub-kernel>", e.g. "kept_1x3x3"), the share of all searched
// positions' channels that the search's own derivation (derive_by_volume)
// would keep from it if derived now. run_search adds these to every epoch's
// metrics (its log line).
std::map<std::string, double> kept_shares(const SuperNet& net);

// "epoch 2/3: loss 1.2345, 3.4 s (0.120 s/step); derived now keeps 3x3x3 41%,
// 1x3x3 32%, 3x1x1 27% of the channels; derived_top1 0.5000".
// The shares in `candidates`' order.
std::string epoch_report(
    const train::EpochSummary& summary,
    int64_t epochs,
    const std::vector<SubKernel>& candidates);

// Trains the super-network, epoch by epoch from options.resume_from or from
// the start. `validate`, when given, runs after every epoch with the
// super-network restricted to its currently derived sub-network
// (derive_by_volume) in eval mode. Throws std::invalid_argument on an unknown
// mode, and on resuming with another setting (one line naming its flag and
// both values); std::runtime_error when the checkpoint is unreadable, holds
// another network or was written under another schedule.
std::vector<train::EpochSummary> run_search(
    SuperNet& net,
    train::Loader& loader,
    train::LossFn loss,
    SearchOptions options,
    std::function<std::map<std::string, double>(const models::Model&)>
        validate = {});

} // namespace cakes::search
