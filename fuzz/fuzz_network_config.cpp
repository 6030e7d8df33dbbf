// Network configuration files ({"network", "op", "blocks": [...]}).
#include "cakes/models/network_config.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    cakes::models::parse_network_config(text);
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos || msg.size() > 600) {
      __builtin_trap();
    }
  }
  return 0;
}
