// JPEG frames: a decoded RGB image of the declared size, or an exception.
#include "cakes/data/jpeg.h"

#include <cstddef>
#include <cstdint>
#include <exception>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    at::Tensor rgb = cakes::data::decode_jpeg(data, size, "fuzz.jpg");
    if (rgb.dim() != 3 || rgb.size(2) != 3 ||
        rgb.size(0) * rgb.size(1) > cakes::data::kMaxJpegPixels) {
      __builtin_trap();
    }
  } catch (const std::exception&) {
  }
  return 0;
}
