#include "cakes/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cakes::data {

Sample Dataset::clip(int64_t index, int64_t k, int64_t clips) const {
  if (clips != 1 || k != 0)
    throw std::invalid_argument(
        "several clips per sample need a video dataset (" + describe() + ")");
  std::mt19937_64 rng(0); // evaluation samples draw nothing
  return get(index, rng);
}

std::vector<int64_t> spread_segment_indices(
    int64_t num_frames, int64_t segments, int64_t k, int64_t clips) {
  std::vector<int64_t> out;
  const double len = double(num_frames) / double(segments);
  for (int64_t s = 0; s < segments; ++s) {
    const auto i = int64_t(std::floor(len * (s + (k + 0.5) / double(clips))));
    out.push_back(std::min(std::max<int64_t>(i, 0), num_frames - 1));
  }
  return out;
}

} // namespace cakes::data
