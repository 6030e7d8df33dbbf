// Layer configurations, JSON ({"3x3x3": 22, ...}) and compact
// (3x3x3:22,1x3x3:21;output_index=...): a Config whose text round-trips, or
// std::invalid_argument with a one-line message.
#include "cakes/nn/config.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const cakes::Config c = cakes::Config::parse(text);
    // What parse accepts, it writes back and reads again as the same.
    if (!(cakes::Config::parse(c.str()) == c) ||
        !(cakes::Config::parse(c.json()) == c) ||
        c.out_channels() > c.conv_channels() || c.taps_times_channels() < 0) {
      __builtin_trap();
    }
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos || msg.size() > 600) {
      __builtin_trap();
    }
  }
  return 0;
}
