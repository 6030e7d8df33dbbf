// Video files (mp4, avi, webm, ... whatever the installed FFmpeg demuxes)
// decoded through libavformat/libavcodec/libswscale.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cakes::data {

// One open video stream. Not thread-safe: give each worker its own reader.
//
// Frame index i is the time slot start_time + i / frame_rate: the
// decode-order position for constant-frame-rate video. Where a stream skips
// slots (an AVI with dropped frames), a request for a missing slot gets the
// next frame, and read_all() returns fewer frames than frame_count().
class VideoReader {
public:
  // Opens the best video stream of `path`. Frames come out at the native
  // size, or scaled (by swscale, while converting to RGB) so that the shorter
  // side is `short_side` when it is > 0: cheaper than converting full HD
  // frames to float and resizing them afterwards. Throws std::runtime_error
  // naming the file when it is missing, not a video, or has no decodable
  // stream.
  explicit VideoReader(const std::string& path, int64_t short_side = 0);
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  // Number of frames from the container (exact for mp4/avi; estimated from
  // duration x frame rate where the container does not store it, e.g. webm).
  int64_t frame_count() const;
  double frame_rate() const;
  // Size of the frames read_frames returns (after any short-side scaling).
  int64_t width() const;
  int64_t height() const;

  // Frames at `indices` (any order, repeats allowed) as uint8 (T, H, W, 3) RGB,
  // T = indices.size(). Seeks to the key frame before a wanted frame instead
  // of decoding the gap when the gap holds a key frame. An index past the
  // last decodable frame yields the last frame (frame_count() may be an
  // estimate). Throws std::runtime_error naming the file on decode errors.
  at::Tensor read_frames(const std::vector<int64_t>& indices);

  // Every frame, decoded sequentially from the start: (N, H, W, 3).
  at::Tensor read_all();

  // Frames the decoder produced since opening (how much seeking saved).
  int64_t frames_decoded() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace cakes::data
