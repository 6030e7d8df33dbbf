#include "cakes/data/video_writer.h"

#include <ATen/ATen.h>

#include <sys/wait.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

namespace cakes::data {

namespace {

// `ffmpeg -encoders`, read once.
const std::string& encoder_list() {
  static const std::string all = [] {
    FILE* p = popen("ffmpeg -hide_banner -encoders 2>/dev/null", "r");
    if (!p) {
      throw std::runtime_error("cannot run ffmpeg (Debian package ffmpeg)");
    }
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
      out.append(buf, n);
    }
    if (pclose(p) != 0) {
      throw std::runtime_error("cannot run ffmpeg (Debian package ffmpeg)");
    }
    return out;
  }();
  return all;
}

bool has_encoder(const std::string& name) {
  return encoder_list().find(" " + name + " ") != std::string::npos;
}

} // namespace

std::string video_encoder(const std::string& path) {
  const bool webm =
      path.size() >= 5 && path.compare(path.size() - 5, 5, ".webm") == 0;
  const std::vector<std::string> wanted =
      webm ? std::vector<std::string>{"libvpx-vp9"}
           : std::vector<std::string>{"libx264", "mpeg4"};
  for (const std::string& name : wanted) {
    if (has_encoder(name)) {
      return name;
    }
  }
  throw std::runtime_error(
      path + ": this ffmpeg lacks the " +
      (webm ? std::string("libvpx-vp9") : std::string("libx264 or mpeg4")) +
      " encoder (Debian package ffmpeg)");
}

void write_video(const std::string& path, const at::Tensor& frames, int fps) {
  if (frames.dim() != 4 || frames.size(3) != 3 ||
      frames.scalar_type() != at::kByte || frames.size(1) % 2 != 0 ||
      frames.size(2) % 2 != 0 || fps < 1) {
    throw std::invalid_argument(
        path + ": write_video needs uint8 (T, H, W, 3) frames with even H, W "
               "and fps >= 1");
  }
  const std::string encoder = video_encoder(path);
  const std::string quality =
      encoder == "libx264" ? "-crf 18 -preset veryfast"
      : encoder == "mpeg4" ? "-q:v 2"
                           : "-crf 20 -b:v 0 -deadline realtime -cpu-used 8";
  const std::string cmd =
      "ffmpeg -loglevel error -y -f rawvideo -pix_fmt rgb24 -s " +
      std::to_string(frames.size(2)) + "x" + std::to_string(frames.size(1)) +
      " -r " + std::to_string(fps) + " -i - -c:v " + encoder + " " + quality +
      " -pix_fmt yuv420p '" + path + "'";
  FILE* p = popen(cmd.c_str(), "w");
  if (!p) {
    throw std::runtime_error(path + ": cannot start ffmpeg");
  }
  const at::Tensor data = frames.contiguous();
  const size_t bytes = size_t(data.numel());
  const size_t written = fwrite(data.data_ptr<uint8_t>(), 1, bytes, p);
  const int rc = pclose(p);
  if (written != bytes || rc != 0) {
    throw std::runtime_error(
        path + ": ffmpeg failed (exit " + std::to_string(WEXITSTATUS(rc)) +
        ")");
  }
}

} // namespace cakes::data
