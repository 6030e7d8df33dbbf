// Video files (mp4, avi, webm, ... whatever the installed FFmpeg demuxes)
// decoded through libavformat/libavcodec/libswscale.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cakes::data {

// The largest frame a VideoReader decodes: 2^26 pixels (8192 x 8192), far
// above any dataset's frames, so a corrupt header cannot make it allocate
// gigabytes per frame.
constexpr int64_t kMaxVideoPixels = int64_t(1) << 26;

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
  // stream, or frames larger than kMaxVideoPixels. Only local files are
  // read: a playlist cannot make it fetch URLs.
  explicit VideoReader(const std::string& path, int64_t short_side = 0);
  // The same for a file held in memory (copied), read through FFmpeg's
  // custom I/O; `name` stands for the file in errors. Such a file cannot
  // open others (a playlist's entries).
  VideoReader(
      const void* data,
      size_t size,
      const std::string& name,
      int64_t short_side = 0);
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
  // estimate). Damage is an error, never concealed: throws
  // std::runtime_error naming the file and the frame on a corrupt packet or
  // frame (one the decoder had to patch), a read error mid-file, or a stream
  // that ends before the frame count its container lists (truncation).
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
