// JPEG decode/encode through libjpeg-turbo's TurboJPEG API.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace cakes::data {

// The largest frame read_jpeg decodes: 2^26 pixels (8192 x 8192, 192 MiB as
// RGB), far above any video frame, so that a corrupt header cannot make it
// allocate gigabytes.
constexpr int64_t kMaxJpegPixels = int64_t(1) << 26;

// Decodes a JPEG file to RGB, uint8, shape (H, W, 3). Throws
// std::runtime_error naming the file when it is missing or not a valid JPEG,
// declares more than kMaxJpegPixels pixels or more than its bytes can hold,
// or is damaged: a truncated file or corrupt data (any libjpeg warning other
// than extraneous bytes between segments) is an error, not a frame with its
// missing part filled gray.
at::Tensor read_jpeg(const std::string& path);

// The same for JPEG bytes in memory; `name` stands for the file in errors.
at::Tensor decode_jpeg(const void* data, size_t size, const std::string& name);

// Encodes a uint8 (H, W, 3) RGB tensor to a JPEG file (4:4:4, `quality` in
// 1..100). Used by tests and the synthetic-data generator.
void write_jpeg(
    const std::string& path, const at::Tensor& rgb, int quality = 95);

} // namespace cakes::data
