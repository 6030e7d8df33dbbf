// JPEG decode/encode through libjpeg-turbo's TurboJPEG API.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace cakes::data {

// Decodes a JPEG file to RGB, uint8, shape (H, W, 3). Throws
// std::runtime_error naming the file when it is missing or not a valid JPEG.
at::Tensor read_jpeg(const std::string& path);

// Encodes a uint8 (H, W, 3) RGB tensor to a JPEG file (4:4:4, `quality` in
// 1..100). Used by tests and the synthetic-data generator.
void write_jpeg(
    const std::string& path, const at::Tensor& rgb, int quality = 95);

} // namespace cakes::data
