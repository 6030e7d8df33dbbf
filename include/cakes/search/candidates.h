// Candidate sub-kernels of a search (docs/CAKES.md §1, §4).
#pragma once

#include "cakes/nn/config.h"

#include <string>
#include <vector>

namespace cakes::search {

// "3x3x3,1x3x3,3x1x1" or a named set: video_12d, video_23d, video_123d,
// volumetric_2d, volumetric_1d, volumetric_all. Throws std::invalid_argument
// naming the offending entry on an unknown candidate, and on an empty or
// repeated one.
std::vector<SubKernel> parse_candidates(const std::string& text);

} // namespace cakes::search
