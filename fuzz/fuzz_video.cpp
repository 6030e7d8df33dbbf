// Video containers and streams through FFmpeg's custom I/O (the fuzzer's
// bytes in memory): open, then read frames forward, backward and past the
// end, as the loaders do.
#include "cakes/data/video_reader.h"

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cakes::data::VideoReader reader(data, size, "fuzz.mp4", /*short_side=*/32);
    const int64_t n = reader.frame_count();
    std::vector<int64_t> idx = {0, 1};
    if (n > 2) {
      idx = {n / 2, 0, n - 1, n + 3};
    }
    at::Tensor frames = reader.read_frames(idx);
    if (frames.size(0) != int64_t(idx.size()) || frames.size(3) != 3) {
      __builtin_trap();
    }
  } catch (const std::exception&) {
  }
  return 0;
}
