// Search for CAKES configurations (SPEC §4): super-networks, the cost-priority
// (C) L1 sub-gradient, the performance-priority (P) random channel subsets,
// derivation of a configuration (per layer, or under a global MACs/latency
// budget) and weight inheritance from the super-network.
//
// A super-network is one of our networks built with the "super" operation
// (op_spec.h): every position holds every candidate at full width, N * C_out
// channels in candidate order (candidate n owns channels [n*C_out,
// (n+1)*C_out)), with one BatchNorm over them all. Where the position has a
// reader (Position::reader) the reader convolution reads all N * C_out. Where
// its output feeds a residual addition (the ResNet-18/34 second convolutions,
// the encoder-decoder's stem and second convolutions), which needs C_out
// channels, the candidates' BatchNorm outputs are summed per output index
// ("summed" layers): channel n*C_out + j goes to output j. Every position is
// searched. Derivation keeps C_out channels per layer: the largest |gamma|
// across all candidates for a layer with a reader, and for a summed layer one
// candidate per output index (the largest |gamma_{n,j}|), which the derived
// configuration's output_index puts back at index j (config.h).
//
// Library code never prints; errors are std::invalid_argument /
// std::runtime_error with one-line messages.
#pragma once

#include "cakes/models/zoo.h"
#include "cakes/nn/op_layer.h"
#include "cakes/train/trainer.h"

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace cakes::search {

// "3x3x3,1x3x3,3x1x1" or a named set: video_12d, video_23d, video_123d,
// volumetric_2d, volumetric_1d, volumetric_all. Throws std::invalid_argument
// naming the offending entry on an unknown candidate, and on an empty or
// repeated one.
std::vector<SubKernel> parse_candidates(const std::string& text);
std::string candidates_str(const std::vector<SubKernel>& candidates);

// w_op per candidate: kernel volume over the sum of the set's volumes (27:9:3
// -> 9/13, 3/13, 1/13), or 1 for every candidate without re-weighting.
std::vector<double>
l1_weights(const std::vector<SubKernel>& candidates, bool reweight);

// One searched position of a super-network.
struct SearchLayer {
  size_t position = 0; // index into SuperNet::positions
  std::string name;    // module path of the position
  int64_t width = 0;   // C_out: channels kept per layer
  nn::OpLayer layer{nullptr};
  nn::OpLayer reader{nullptr}; // empty for a summed layer
  // The candidates are summed per output index (no reader; the output feeds
  // a residual addition). Kept channels: exactly one per index j, i.e. one
  // of {n*C_out + j}.
  bool summed = false;
};

struct SuperNet {
  models::ModelArgs args; // args.op is {"super", {}, candidates}
  std::vector<SubKernel> candidates;
  models::Model model;
  std::vector<Position> positions; // all positions, configuration order
  std::vector<SearchLayer> layers; // one per position, in that order
};

// Builds the super-network of `args.network` (args.op is replaced). Throws
// std::invalid_argument on an unknown network or an empty candidate list.
SuperNet
build_supernet(models::ModelArgs args, std::vector<SubKernel> candidates);

// Cost-priority search: grad(gamma) += sparsity * w_op * sign(gamma) on the
// BatchNorm scales of every searched layer (call after backward). Scales
// without a gradient get one.
void add_l1_subgradient(SuperNet& net, double sparsity, bool reweight);

// Restricts every searched layer to `kept[l]` (global channel indices of layer
// l, any order; a layer with a reader outputs them in ascending order, a
// summed layer sends each to its output index) and its reader to the same
// input columns; `clear_selection` restores the full super-network. In eval
// mode a selection computes the derived network with inherited weights.
void select(SuperNet& net, const std::vector<std::vector<int64_t>>& kept);
void clear_selection(SuperNet& net);
// Performance-priority step: per layer a uniformly random subset of exactly
// C_out of the N * C_out channels; for a summed layer one uniformly random
// candidate per output index. Returns the subsets (as select()).
std::vector<std::vector<int64_t>>
select_random(SuperNet& net, std::mt19937_64& rng);

// What a performance-priority step must leave alone (SPEC §4: a step trains
// only its subset). The selection already keeps gradients off the dropped
// channels, but SGD's weight decay and momentum (and Adam's moments) would
// still move their parameters. Construct after backward, before the optimizer
// step; restore() after the step puts back the dropped channels' parameters
// (conv rows, BatchNorm scale and shift, the reader's input columns) and their
// slices of the optimizer's per-parameter state (a state the step created
// starts at zero there, as if it had been created by the first step that
// selects them). So each channel's optimizer state advances only on the steps
// that select it. Supports SGD, Adam and AdamW; throws std::invalid_argument
// on another optimizer's state.
class DroppedChannels {
public:
  DroppedChannels(
      const SuperNet& net,
      const std::vector<std::vector<int64_t>>& kept,
      torch::optim::Optimizer& optimizer);
  void restore();

private:
  struct Slice {
    torch::Tensor param;
    int64_t dim = 0;
    torch::Tensor index;
    torch::Tensor value;
    bool had_state = false;
    std::vector<torch::Tensor> state; // per optimizer state tensor
  };
  torch::optim::Optimizer* optimizer_;
  std::vector<Slice> slices_;
};

// |gamma| of each searched layer's BatchNorm, N * C_out values per layer.
std::vector<std::vector<double>> importance(const SuperNet& net);

// Per-channel cost of each candidate at each searched layer plus the cost of
// everything that does not depend on the derivation (stem, 1x1 convs and
// readers at their derived width, classifier). Units: MACs from the network's
// cost report, or milliseconds from a latency table.
struct CostModel {
  std::string unit;                      // "MACs" or "ms"
  std::vector<std::vector<double>> cost; // [layer][candidate], per channel
  double fixed = 0;
  double reference = 0; // the all-3x3x3 network in the same unit
  double total(const std::vector<std::vector<int64_t>>& counts) const;
  // The all-cheapest-candidate cost: the lowest any derivation reaches.
  double minimum(const std::vector<int64_t>& widths) const;
};

// MACs for an input of `input_sizes` (N, C, D, H, W).
CostModel mac_cost_model(const SuperNet& net, std::vector<int64_t> input_sizes);

// Latency table: per searched layer and candidate, milliseconds of a forward
// pass of that layer with C_out channels of the candidate alone, and the rest
// of the network (measured whole-network time minus the modelled layers).
struct LatencyTable {
  std::string network;
  int64_t width = 0; // network base width; 0 = the network's default
  std::vector<SubKernel> candidates;
  std::vector<int64_t> input_sizes;
  int threads = 0;
  std::vector<std::string> layers;
  std::vector<std::vector<double>> layer_ms; // [layer][candidate], C_out chans
  double rest_ms = 0;
  double reference_ms = 0; // all-3x3x3 network, modelled
  std::string json() const;
  static LatencyTable parse(const std::string& json_text);
};
// Measures the table on this machine (median of `repeats` timed runs each).
LatencyTable measure_latency(
    const SuperNet& net, std::vector<int64_t> input_sizes, int repeats = 5);
// Throws std::invalid_argument when the table was measured for another
// network, width, candidate set or layer list.
CostModel latency_cost_model(const SuperNet& net, const LatencyTable& table);

struct Derivation {
  std::vector<std::vector<int64_t>> kept;   // per searched layer, ascending
  std::vector<std::vector<int64_t>> counts; // [layer][candidate]
  std::vector<Config> configs;              // one per position (all of them)
  double cost = 0;                          // in the cost model's unit
  double importance = 0;                    // sum of kept |gamma|
};

// Per layer the C_out channels with the largest importance (a summed layer:
// per output index the candidate with the largest importance); ties go to the
// cheaper candidate, then the lower index. Without `budget`, that is SPEC §4
// (widths preserved). With `budget` (cost model units), channels are chosen
// across all layers by importance per unit of cost (a Lagrangian relaxation:
// the same choice made on importance - lambda * cost, lambda the smallest that
// meets the budget), never above it. Throws std::invalid_argument when the
// budget is below the all-cheapest-candidate cost.
Derivation derive(
    const SuperNet& net,
    const std::vector<std::vector<double>>& importance,
    const CostModel& cost,
    std::optional<double> budget = std::nullopt);

// The derived network's configuration file (docs/CONFIGS.md).
std::string config_json(const SuperNet& net, const Derivation& d);

// Builds the derived network and copies the super-network's kept channels into
// it (conv filters, BatchNorm entries and statistics, the reader's input
// columns; everything else as is). In eval mode its output equals the
// super-network's with the dropped channels' BatchNorm outputs zeroed.
models::Model inherit(const SuperNet& net, const Derivation& d);

// Search checkpoints are trainer checkpoints whose network string is
// "cakes-search " + this JSON.
struct SearchMeta {
  std::string network;
  std::vector<SubKernel> candidates;
  int64_t num_classes = 0;
  int64_t in_channels = 1;
  std::string mode;                 // "C" or "P"
  std::vector<int64_t> input_sizes; // for cost: (N, C, D, H, W)
  int64_t width = 0; // network base width; 0 = the network's default
};
std::string search_network_string(const SearchMeta& meta);
// Throws std::runtime_error "FILE is not a search checkpoint (...)" otherwise.
SearchMeta read_search_meta(const std::string& checkpoint_path);
// Rebuilds the super-network and loads the checkpoint's weights.
SuperNet load_search_checkpoint(const std::string& path, SearchMeta* meta);

// Derivation with costs proportional to kernel volume (ties to the cheaper
// candidate, no budget): what `cakes search` writes and what the search
// evaluates after every epoch.
Derivation derive_by_volume(const SuperNet& net);

struct SearchOptions {
  std::string mode = "C"; // "C" (cost-priority) or "P" (performance-priority)
  double sparsity = 1e-4; // C: the L1 strength s
  bool reweight = true;   // C: w_op by kernel volume, else 1
  uint64_t seed = 0;      // P: the channel subsets
  train::TrainerOptions trainer; // after_backward and validate are set here
};

// Trains the super-network (the trainer checkpoints as `meta`). `validate`,
// when given, runs after every epoch with the super-network restricted to its
// currently derived sub-network (derive_by_volume) in eval mode. Throws
// std::invalid_argument on an unknown mode.
std::vector<train::EpochSummary> run_search(
    SuperNet& net,
    const SearchMeta& meta,
    train::Loader& loader,
    train::LossFn loss,
    SearchOptions options,
    std::function<std::map<std::string, double>(SuperNet&)> validate = {});

} // namespace cakes::search
