// Video-classification datasets: TRN-style frame folders and video files.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/data/transforms.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cakes::data {

// How a clip is sampled and augmented; shared by both video datasets.
// Training: TSN random segment offsets, multi-scale crop to crop_size,
// horizontal flip with probability 0.5 (labels swapped per flip_swaps).
// Evaluation: centred segments, short side to scale_size, centre crop.
// Output input (3, T, crop_size, crop_size) float32 normalised by mean/std
// (on [0, 1] pixels), T = num_segments * frames_per_segment.
struct ClipOptions {
  int64_t num_segments = 8;
  int64_t frames_per_segment = 1;
  bool training = true;
  int64_t crop_size = 224;
  int64_t scale_size = 256;
  std::vector<double> crop_scales{1.0, 0.875, 0.75, 0.66};
  bool flip = true;
  LabelSwaps flip_swaps; // empty: a flip keeps the label
  std::vector<double> mean{0.485, 0.456, 0.406};
  std::vector<double> std{0.229, 0.224, 0.225};
};

// uint8 (T, H, W, 3) frames + label -> a Sample per `options`.
Sample make_clip_sample(
    const at::Tensor& frames,
    int64_t label,
    const ClipOptions& options,
    std::mt19937_64& rng);

// Class names, one per line (TRN's category.txt). Throws naming the file.
std::vector<std::string> read_category_file(const std::string& path);

// Something-Something in the TRN preparation (docs/CAKES.md §7). The list file
// has one line per video, `folder num_frames label`; frames are
// <root>/<folder>/<template(first_frame + i)>.
struct FrameFolderOptions {
  std::string list_file;
  std::string
      root; // frame folders are relative to it; default: list file's folder
  // Number of classes from category.txt, or given directly (num_classes).
  std::string category_file;
  int64_t num_classes = 0;
  // "{:05d}.jpg" (V1), "{:06d}.jpg" (V2); "{}" and printf "%05d" also work.
  std::string frame_template = "{:05d}.jpg";
  int64_t first_frame = 1; // TRN numbers frames from 1
};

struct FrameFolderEntry {
  std::string folder; // absolute or relative to the working directory
  int64_t num_frames;
  int64_t label;
  int64_t line; // in the list file, for error messages
};

class FrameFolderDataset : public Dataset {
public:
  // Reads and checks the list file: a line without a positive integer frame
  // count or an integer label, or a label outside [0, num_classes), throws
  // std::runtime_error naming the file and line. Frames are read in get();
  // a missing frame throws naming that frame's file.
  FrameFolderDataset(FrameFolderOptions options, ClipOptions clip);
  int64_t size() const override;
  Sample get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;
  Sample clip(int64_t index, int64_t k, int64_t clips) const override;

  int64_t num_classes() const override {
    return num_classes_;
  }
  const std::vector<FrameFolderEntry>& entries() const {
    return entries_;
  }
  std::string frame_path(int64_t index, int64_t frame) const; // frame 0-based

private:
  FrameFolderOptions options_;
  ClipOptions clip_;
  int64_t num_classes_ = 0;
  std::vector<FrameFolderEntry> entries_;
  std::string prefix_, suffix_;
  int width_ = 0; // zero-padding width of the frame number
};

// Video files: list lines `path label` (path relative to root, default the
// list file's folder). Segments are read by seeking (VideoReader).
struct VideoListOptions {
  std::string list_file;
  std::string root;
  std::string category_file;
  int64_t num_classes = 0;
};

class VideoDataset : public Dataset {
public:
  VideoDataset(VideoListOptions options, ClipOptions clip);
  int64_t size() const override;
  Sample get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;
  Sample clip(int64_t index, int64_t k, int64_t clips) const override;

  int64_t num_classes() const override {
    return num_classes_;
  }
  const std::string& path(int64_t index) const {
    return paths_.at(index);
  }
  int64_t label(int64_t index) const {
    return labels_.at(index);
  }

private:
  VideoListOptions options_;
  ClipOptions clip_;
  int64_t num_classes_ = 0;
  std::vector<std::string> paths_;
  std::vector<int64_t> labels_;
};

} // namespace cakes::data
