// Writing video files through the `ffmpeg` program (Debian package ffmpeg):
// for synthetic data sets and for tests that need real encoded videos.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace cakes::data {

// The encoder write_video uses for `path`: for .webm "libvpx-vp9" (as
// Something-Something V2 ships), otherwise "libx264" when this ffmpeg build
// has it, else "mpeg4". Throws std::runtime_error when ffmpeg cannot be run
// or lacks the encoder.
std::string video_encoder(const std::string& path);

// Encodes uint8 (T, H, W, 3) RGB frames (H and W even, as yuv420p needs) at
// `fps` frames per second into `path` (the container from its extension,
// .mp4, .avi, .webm, ...), overwriting it. Throws std::invalid_argument for
// other frames, std::runtime_error naming the file when ffmpeg fails.
void write_video(
    const std::string& path, const at::Tensor& frames, int fps = 8);

} // namespace cakes::data
