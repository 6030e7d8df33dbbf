#include "cakes/util/messages.h"

namespace cakes::util {

std::string one_line(const std::string& text, std::size_t max) {
  std::string out;
  const bool cut = text.size() > max;
  const std::size_t keep = cut ? (max > 3 ? max - 3 : 0) : text.size();
  out.reserve(keep + 3);
  for (std::size_t i = 0; i < keep; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
  }
  if (cut) {
    out += "...";
  }
  return out;
}

} // namespace cakes::util
