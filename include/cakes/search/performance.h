// The performance-priority ("P") search's steps (docs/CAKES.md §4): a random
// channel subset per step, and nothing else moves.
#pragma once

#include "cakes/search/supernet.h"

#include <torch/optim/optimizer.h>

#include <random>
#include <vector>

namespace cakes::search {

// Per layer a uniformly random subset of exactly C_out of the N * C_out
// channels; for a summed layer one uniformly random candidate per output
// index. Selects them (select()) and returns them.
std::vector<std::vector<int64_t>>
select_random(SuperNet& net, std::mt19937_64& rng);

// What a performance-priority step must leave alone (a step trains only its
// subset). The selection already keeps gradients off the dropped channels,
// but SGD's weight decay and momentum (and Adam's moments) would still move
// their parameters. Construct after backward, before the optimizer step;
// restore() after the step puts back the dropped channels' parameters (conv
// rows, BatchNorm scale and shift, the reader's input columns) and their
// slices of the optimizer's per-parameter state (train::parameter_state; a
// state the step created starts at zero there, as if it had been created by
// the first step that selects them). So each channel's optimizer state
// advances only on the steps that select it. Supports SGD, Adam and AdamW;
// throws std::invalid_argument on another optimizer's state.
class DroppedChannels {
public:
  DroppedChannels(
      const SuperNet& net,
      const std::vector<std::vector<int64_t>>& kept,
      torch::optim::Optimizer& optimizer);
  void restore();

private:
  struct Slice {
    at::Tensor param;
    int64_t dim = 0;
    at::Tensor index;
    at::Tensor value;
    bool had_state = false;
    std::vector<at::Tensor> state; // per optimizer state tensor
  };
  torch::optim::Optimizer* optimizer_;
  std::vector<Slice> slices_;
};

} // namespace cakes::search
