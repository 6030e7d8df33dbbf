// The distributed sampler: every rank visits its own share of each epoch.
//
// It takes the epoch's order from a base sampler (the same on every rank:
// same seed) and deals it out round-robin: rank r gets positions r, r + W,
// r + 2W, ... So batch k of every rank together is exactly batch k of one
// process using the base order with W times the batch size, which is what
// makes W processes train like one on the combined batch.
//
// When the epoch's length n is not a multiple of the world size W:
//  - Remainder::pad (default, as PyTorch's DistributedSampler): the order is
//    extended by repeating its first W - n % W entries, so every sample is
//    visited at least once and exactly those few twice; each rank gets
//    ceil(n / W).
//  - Remainder::drop: the last n % W entries of the (shuffled) order are left
//    out, so every visited sample is visited once; each rank gets
//    floor(n / W). Which samples are left out changes every epoch.
// Either way every rank gets the same number of samples, so all ranks take
// the same number of steps (a rank with one step more would wait for the
// others' all-reduce until the timeout).
#pragma once

#include "cakes/train/loader.h"

#include <memory>

namespace cakes::dist {

enum class Remainder { pad, drop };

class DistributedSampler : public train::Sampler {
public:
  // Throws std::invalid_argument when world_size < 1, rank is outside
  // [0, world_size) or base is null.
  DistributedSampler(
      std::shared_ptr<const train::Sampler> base,
      int rank,
      int world_size,
      Remainder remainder = Remainder::pad);
  // Over all indices 0..size-1 (SubsetSampler(size, shuffle, seed)).
  DistributedSampler(
      int64_t size,
      bool shuffle,
      uint64_t seed,
      int rank,
      int world_size,
      Remainder remainder = Remainder::pad);

  std::vector<int64_t> indices(int64_t epoch) const override;

private:
  std::shared_ptr<const train::Sampler> base_;
  int rank_, world_size_;
  Remainder remainder_;
};

} // namespace cakes::dist
