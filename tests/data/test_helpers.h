// Helpers shared by the data tests: running the reference
// tools (Debian's python3 with nibabel, ffprobe), writing frame folders.
#pragma once

#include "cakes/data/video_datasets.h"

#include "support/temp_dir.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cakes::data::testing {

using cakes::test::TempDir;

// Runs a shell command and returns its stdout; throws if it exits non-zero.
std::string run_command(const std::string& command);

// Whitespace-separated numbers in `text`.
std::vector<double> parse_numbers(const std::string& text);

// The message of the std::runtime_error `fn` throws ("" if none).
template <typename Fn> std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// Evaluation clip options that leave pixels as decoded: frames whose short
// side is `side` are neither resized nor cropped along it (the centre
// side x side window), mean 0, std 1, so input * 255 is the pixel level.
ClipOptions identity_eval(int64_t segments, int64_t side);

// Frame value of channel c at (frame t, row y, column x) of video v in the
// synthetic frame folders: smooth, so JPEG keeps it within a few levels, and
// different along t, x and c so index or axis mistakes show.
uint8_t synthetic_pixel(int64_t v, int64_t t, int64_t y, int64_t x, int64_t c);

// Writes <root>/video<v>/<template(1 + t)> JPEG frames for each video, a
// category.txt with `num_classes` lines and <root>/list.txt lines
// "video<v> <frames[v]> <labels[v]>". Frame name template is "{:05d}.jpg"
// with 5 digits or `digits`.
void write_frame_folders(
    const std::string& root,
    const std::vector<int64_t>& frames,
    const std::vector<int64_t>& labels,
    int64_t num_classes,
    int64_t height,
    int64_t width,
    int digits = 5);

} // namespace cakes::data::testing
