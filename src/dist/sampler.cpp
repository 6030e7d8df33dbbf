#include "cakes/dist/sampler.h"

#include <stdexcept>
#include <string>

namespace cakes::dist {

DistributedSampler::DistributedSampler(
    std::shared_ptr<const train::Sampler> base,
    int rank,
    int world_size,
    Remainder remainder)
    : base_(std::move(base)), rank_(rank), world_size_(world_size),
      remainder_(remainder) {
  if (!base_) {
    throw std::invalid_argument("DistributedSampler: no base sampler");
  }
  if (world_size_ < 1 || rank_ < 0 || rank_ >= world_size_) {
    throw std::invalid_argument(
        "DistributedSampler: rank " + std::to_string(rank_) +
        " is not in [0, " + std::to_string(world_size_) + ")");
  }
}

DistributedSampler::DistributedSampler(
    int64_t size,
    bool shuffle,
    uint64_t seed,
    int rank,
    int world_size,
    Remainder remainder)
    : DistributedSampler(
          std::make_shared<train::SubsetSampler>(size, shuffle, seed),
          rank,
          world_size,
          remainder) {}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch) const {
  std::vector<int64_t> all = base_->indices(epoch);
  const size_t w = static_cast<size_t>(world_size_);
  const size_t rest = all.size() % w;
  if (rest != 0) {
    if (remainder_ == Remainder::drop) {
      all.resize(all.size() - rest);
    } else if (!all.empty()) {
      const size_t n = all.size();
      // The order may be shorter than the padding (n < W): cycle through it.
      for (size_t i = 0; i < w - rest; ++i) {
        all.push_back(all[i % n]);
      }
    }
  }
  std::vector<int64_t> mine;
  mine.reserve(all.size() / w);
  for (size_t i = static_cast<size_t>(rank_); i < all.size(); i += w) {
    mine.push_back(all[i]);
  }
  return mine;
}

} // namespace cakes::dist
