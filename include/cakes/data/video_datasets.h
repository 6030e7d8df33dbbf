// Video-classification datasets: TRN-style frame folders and video files.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/data/transforms.h"

#include <cstdint>
#include <memory>
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

// Where a video dataset's classes come from, first given first: the names
// themselves, a category file (one name per line), or only their number
// (integer labels). With none of them, the classes are the sorted distinct
// name labels of the list or the sorted class folders of a tree.
//
// A list label is an integer (the class index) or a class name, matched as
// written or with '_' read as ' ' (Kinetics folders write "air_drumming" for
// "air drumming"; a list's label is its last field, so a name with spaces is
// written with '_' there).
struct ClassSource {
  std::vector<std::string> class_names;
  std::string category_file;
  int64_t num_classes = 0;
};

// The video-classification datasets: a class index per video, and its class
// names when they are known (empty when only their number is).
class VideoClassDataset : public Dataset {
public:
  int64_t num_classes() const override {
    return num_classes_;
  }
  std::vector<std::string> class_names() const override {
    return class_names_;
  }

protected:
  int64_t num_classes_ = 0;
  std::vector<std::string> class_names_;
};

// Something-Something in the TRN preparation (docs/CAKES.md §7). The list
// file has one line per video, `folder num_frames label` (label: an index or
// a class name); frames are <root>/<folder>/<template(first_frame + i)>.
struct FrameFolderOptions : ClassSource {
  std::string list_file;
  std::string
      root; // frame folders are relative to it; default: list file's folder
  // "{:05d}.jpg" (V1), "{:06d}.jpg" (V2); "{}" and printf "%05d" also work.
  std::string frame_template = "{:05d}.jpg";
  int64_t first_frame = 1; // TRN numbers frames from 1
};

struct FrameFolderEntry {
  std::string folder; // absolute or relative to the working directory
  int64_t num_frames; // 0: count the folder's frames when a clip is read
  int64_t label;
  int64_t line; // in the list file (entry number in a JSON list)
};

class FrameFolderDataset : public VideoClassDataset {
public:
  // Reads and checks the list file: a line without a positive integer frame
  // count or a label, an integer label outside [0, num_classes) or an
  // unknown class name throws std::runtime_error naming the file and line.
  // Frames are read in get(); a missing frame throws naming that frame's
  // file.
  FrameFolderDataset(FrameFolderOptions options, ClipOptions clip);
  // Entries already read (Something-Something V2's JSON); `options` gives
  // the template and, as list_file, the file to name in errors.
  FrameFolderDataset(
      FrameFolderOptions options,
      std::vector<FrameFolderEntry> entries,
      std::vector<std::string> class_names,
      ClipOptions clip);
  int64_t size() const override;
  Sample get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;
  Sample clip(int64_t index, int64_t k, int64_t clips) const override;

  const std::vector<FrameFolderEntry>& entries() const {
    return entries_;
  }
  std::string frame_path(int64_t index, int64_t frame) const; // frame 0-based
  // The entry's frame count, counted in its folder when the list has none.
  int64_t frame_count(int64_t index) const;

private:
  void parse_template();

  FrameFolderOptions options_;
  ClipOptions clip_;
  std::vector<FrameFolderEntry> entries_;
  std::string prefix_, suffix_;
  int width_ = 0; // zero-padding width of the frame number
};

// Video files with their class labels, from a list or a class-per-folder
// tree (PyTorchVideo's LabeledVideoPaths).
struct LabeledVideos {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  std::vector<std::string> class_names; // empty when only the number is known
  int64_t num_classes = 0;
  std::string source; // the list file or folder, for messages
};

// Video list: lines `path label` (label: an index or a class name; path
// relative to root, default the list file's folder, and may contain spaces).
struct VideoListOptions : ClassSource {
  std::string list_file;
  std::string root;
};
// Throws std::runtime_error naming the file and line for a malformed line,
// an out-of-range index or an unknown class name.
LabeledVideos read_video_list(const VideoListOptions& options);

// Class-per-folder tree root/<class>/.../<video> (Kinetics, UCF101, HMDB51;
// PyTorchVideo's LabeledVideoPaths.from_directory, torchvision's
// DatasetFolder): without a ClassSource the classes are the sub-folders of
// root in byte order; with one, every sub-folder must name one of its
// classes. The videos of a class are the files below its folder (recursively,
// symbolic links followed, in path order) with a video extension, case
// ignored: mp4 avi mkv webm mov m4v mpg mpeg ogv flv wmv 3gp. Hidden files
// and folders (name starting with '.') are skipped. Throws
// std::runtime_error naming the folder when root is not a folder, has no
// class folders, a class folder has no video or is not a known class.
struct VideoFolderOptions : ClassSource {
  std::string root;
};
LabeledVideos scan_video_folder(const VideoFolderOptions& options);
// The class folders of such a tree, sorted: the classes it has without a
// ClassSource. Throws as scan_video_folder does for a missing or empty root.
std::vector<std::string> video_class_folders(const std::string& root);
// Whether the name ends in one of the video extensions above.
bool is_video_file_name(const std::string& name);

// Video files; segments are read by seeking (VideoReader).
class VideoDataset : public VideoClassDataset {
public:
  explicit VideoDataset(LabeledVideos videos, ClipOptions clip);
  VideoDataset(const VideoListOptions& options, ClipOptions clip);
  int64_t size() const override;
  Sample get(int64_t index, std::mt19937_64& rng) const override;
  std::string describe() const override;
  Sample clip(int64_t index, int64_t k, int64_t clips) const override;

  const std::string& path(int64_t index) const {
    return videos_.paths.at(index);
  }
  int64_t label(int64_t index) const {
    return videos_.labels.at(index);
  }

private:
  LabeledVideos videos_;
  ClipOptions clip_;
};

// Something-Something V2 as 20BN ships it: something-something-v2-labels.json
// maps each class name to its index (a string "0".."173" or a number), and
// the train/validation JSON lists entries {"id", "template", ...} whose class
// is the template with its brackets removed ("Putting [something] on a
// surface" -> "Putting something on a surface"), as TSM's and TRN's label
// scripts map it. A video is the frame folder <root>/<id>/ (frames numbered
// from first_frame in frame_template, counted when read) when the first
// entry's folder exists, else the file <root>/<id>.webm (or .mp4).
struct Ssv2Options {
  std::string list_file;   // something-something-v2-{train,validation}.json
  std::string labels_file; // default: something-something-v2-labels.json
                           // in the list file's folder
  std::string root;        // default: the list file's folder
  std::string frame_template = "{:06d}.jpg";
  int64_t first_frame = 1;
};

struct Ssv2List {
  std::vector<std::string> class_names; // index = labels.json value
  std::vector<std::string> ids;
  std::vector<int64_t> labels;
};
// Throws std::runtime_error naming the file (and entry) when a file is
// missing or not JSON, an entry lacks "id" or "template" (the test list has
// no labels), or a template names no class of the labels file.
Ssv2List read_ssv2_list(const Ssv2Options& options);

// A FrameFolderDataset or a VideoDataset over read_ssv2_list's videos;
// throws naming the first video whose folder or file is missing.
std::shared_ptr<VideoClassDataset>
make_ssv2_dataset(const Ssv2Options& options, ClipOptions clip);

} // namespace cakes::data
