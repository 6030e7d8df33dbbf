#include "cakes/search/candidates.h"

#include <map>
#include <sstream>
#include <stdexcept>

namespace cakes::search {

std::vector<SubKernel> parse_candidates(const std::string& text) {
  static const std::map<std::string, std::string> named = {
      {"video_12d", "1x3x3,3x1x1"},
      {"video_23d", "3x3x3,1x3x3"},
      {"video_123d", "3x3x3,1x3x3,3x1x1"},
      {"volumetric_2d", "1x3x3,3x1x3,3x3x1"},
      {"volumetric_1d", "3x1x1,1x3x1,1x1x3"},
      {"volumetric_all", "3x3x3,1x3x3,3x1x3,3x3x1,3x1x1,1x3x1,1x1x3"}};
  const auto it = named.find(text);
  const std::string list = it == named.end() ? text : it->second;
  std::vector<SubKernel> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    SubKernel k;
    try {
      k = SubKernel::parse(item);
    } catch (const std::exception&) {
      throw std::invalid_argument(
          "unknown candidate '" + item + "' in '" + text +
          "' (expected sub-kernels DxHxW such as 3x3x3,1x3x3,3x1x1, or a set: "
          "video_12d, video_23d, video_123d, volumetric_2d, volumetric_1d, "
          "volumetric_all)");
    }
    for (const auto& o : out)
      if (o == k)
        throw std::invalid_argument(
            "candidate '" + item + "' listed twice in '" + text + "'");
    out.push_back(k);
  }
  if (out.empty())
    throw std::invalid_argument("no candidate sub-kernels in '" + text + "'");
  return out;
}

} // namespace cakes::search
