#include "cakes/data/video_datasets.h"

#include "cakes/data/jpeg.h"
#include "cakes/data/video_reader.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cakes::data {
namespace {

[[noreturn]] void
fail_at(const std::string& file, int64_t line, const std::string& what) {
  throw std::runtime_error(file + ":" + std::to_string(line) + ": " + what);
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) {
    return false;
  }
  size_t used = 0;
  try {
    out = std::stoll(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size();
}

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> tokens;
  for (std::string t; in >> t;) {
    tokens.push_back(t);
  }
  return tokens;
}

// Calls fn(line number, line, whitespace-split fields) for every non-blank
// line of a list file; throws naming the file when it cannot be opened.
template <class Fn> void for_each_list_line(const std::string& path, Fn&& fn) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path + ": cannot open list file");
  }
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    const std::vector<std::string> t = split_ws(line);
    if (!t.empty()) {
      fn(line_no, line, t);
    }
  }
}

std::string
default_root(const std::string& root, const std::string& list_file) {
  if (!root.empty()) {
    return root;
  }
  return fs::path(list_file).parent_path().string();
}

std::string join(const std::string& root, const std::string& rel) {
  if (root.empty() || fs::path(rel).is_absolute()) {
    return rel;
  }
  return (fs::path(root) / rel).string();
}

int64_t resolve_classes(const std::string& category_file, int64_t num_classes) {
  if (!category_file.empty()) {
    return static_cast<int64_t>(read_category_file(category_file).size());
  }
  if (num_classes <= 0) {
    throw std::invalid_argument(
        "video dataset: give a category file or a positive num_classes");
  }
  return num_classes;
}

void check_label(
    const std::string& file, int64_t line, int64_t label, int64_t classes) {
  if (label < 0 || label >= classes) {
    fail_at(
        file,
        line,
        "label " + std::to_string(label) + " outside [0, " +
            std::to_string(classes) + ")");
  }
}

} // namespace

Sample make_clip_sample(
    const at::Tensor& frames,
    int64_t label,
    const ClipOptions& options,
    std::mt19937_64& rng) {
  at::Tensor clip = frames_to_clip(frames);
  if (options.training) {
    MultiScaleCropOptions crop;
    crop.size = options.crop_size;
    crop.scales = options.crop_scales;
    clip = multi_scale_crop(clip, crop, rng);
    if (options.flip && std::bernoulli_distribution(0.5)(rng)) {
      clip = hflip(clip);
      label = flipped_label(label, options.flip_swaps);
    }
  } else {
    clip = center_crop(
        resize_short_side(clip, options.scale_size),
        options.crop_size,
        options.crop_size);
  }
  clip = normalize(clip, options.mean, options.std).contiguous();
  return {clip, at::scalar_tensor(label, at::kLong)};
}

std::vector<std::string> read_category_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path + ": cannot open category file");
  }
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
      line.pop_back();
    }
    if (!line.empty()) {
      names.push_back(line);
    }
  }
  if (names.empty()) {
    throw std::runtime_error(path + ": category file lists no classes");
  }
  return names;
}

// ---- FrameFolderDataset ----------------------------------------------------

FrameFolderDataset::FrameFolderDataset(
    FrameFolderOptions options, ClipOptions clip)
    : options_(std::move(options)), clip_(std::move(clip)) {
  const std::string& tpl = options_.frame_template;
  // "{:05d}" / "{:d}" / "{}" (Python, as TRN writes it) or "%05d" / "%d".
  size_t open = tpl.find('{'), close = std::string::npos;
  std::string spec;
  if (open != std::string::npos) {
    close = tpl.find('}', open);
    if (close != std::string::npos) {
      spec = tpl.substr(open + 1, close - open - 1);
      if (!spec.empty() && spec[0] == ':') {
        spec = spec.substr(1);
      }
      if (!spec.empty() && spec.back() == 'd') {
        spec.pop_back();
      }
    }
  } else if ((open = tpl.find('%')) != std::string::npos) {
    close = tpl.find('d', open);
    if (close != std::string::npos) {
      spec = tpl.substr(open + 1, close - open - 1);
    }
  }
  int64_t width = 0;
  if (close == std::string::npos ||
      (!spec.empty() && !parse_int(spec, width)) || width < 0) {
    throw std::invalid_argument(
        "frame template '" + tpl +
        "' is not like {:05d}.jpg, {}.jpg or %05d.jpg");
  }
  prefix_ = tpl.substr(0, open);
  suffix_ = tpl.substr(close + 1);
  width_ = static_cast<int>(width);

  num_classes_ = resolve_classes(options_.category_file, options_.num_classes);
  const std::string root = default_root(options_.root, options_.list_file);
  for_each_list_line(
      options_.list_file,
      [&](int64_t line_no,
          const std::string& line,
          const std::vector<std::string>& t) {
        if (t.size() < 3) {
          fail_at(
              options_.list_file,
              line_no,
              "expected 'folder num_frames label', got '" + line + "'");
        }
        FrameFolderEntry e;
        if (!parse_int(t[t.size() - 2], e.num_frames) || e.num_frames < 1) {
          fail_at(
              options_.list_file,
              line_no,
              "bad frame count '" + t[t.size() - 2] + "'");
        }
        if (!parse_int(t.back(), e.label)) {
          fail_at(options_.list_file, line_no, "bad label '" + t.back() + "'");
        }
        check_label(options_.list_file, line_no, e.label, num_classes_);
        // A folder name may itself contain spaces: it is everything before the
        // last two fields.
        std::string folder = t[0];
        for (size_t i = 1; i + 2 < t.size(); ++i) {
          folder += " " + t[i];
        }
        e.folder = join(root, folder);
        e.line = line_no;
        entries_.push_back(std::move(e));
      });
}

int64_t FrameFolderDataset::size() const {
  return static_cast<int64_t>(entries_.size());
}

std::string FrameFolderDataset::frame_path(int64_t index, int64_t frame) const {
  std::string number = std::to_string(options_.first_frame + frame);
  if (static_cast<int>(number.size()) < width_) {
    number.insert(0, width_ - number.size(), '0');
  }
  return (fs::path(entries_.at(index).folder) / (prefix_ + number + suffix_))
      .string();
}

Sample FrameFolderDataset::clip(int64_t index, int64_t k, int64_t clips) const {
  ClipOptions c = clip_;
  c.training = false;
  const FrameFolderEntry& e = entries_.at(index);
  std::vector<at::Tensor> frames;
  for (auto i : spread_segment_indices(e.num_frames, c.num_segments, k, clips))
    frames.push_back(read_jpeg(frame_path(index, i)));
  std::mt19937_64 rng(0); // evaluation samples draw nothing
  return make_clip_sample(at::stack(frames), e.label, c, rng);
}

Sample FrameFolderDataset::get(int64_t index, std::mt19937_64& rng) const {
  const FrameFolderEntry& e = entries_.at(index);
  std::vector<int64_t> idx = tsn_segment_indices(
      e.num_frames,
      clip_.num_segments,
      clip_.frames_per_segment,
      clip_.training ? &rng : nullptr);
  std::vector<at::Tensor> frames;
  frames.reserve(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    if (i > 0 && idx[i] == idx[i - 1]) {
      frames.push_back(frames.back());
      continue;
    }
    const std::string path = frame_path(index, idx[i]);
    if (!fs::exists(path)) {
      // Most often the list's frame count disagrees with the folder: say so.
      throw std::runtime_error(
          path + ": missing frame " + std::to_string(idx[i] + 1) + " of " +
          std::to_string(e.num_frames) + " (count from " + options_.list_file +
          ":" + std::to_string(e.line) + ")");
    }
    at::Tensor f = read_jpeg(path);
    if (!frames.empty() && f.sizes() != frames.front().sizes()) {
      throw std::runtime_error(
          frame_path(index, idx[i]) + ": frame size " +
          std::to_string(f.size(1)) + "x" + std::to_string(f.size(0)) +
          " differs from the video's first sampled frame");
    }
    frames.push_back(f);
  }
  return make_clip_sample(at::stack(frames), e.label, clip_, rng);
}

std::string FrameFolderDataset::describe() const {
  return options_.list_file + ": " + std::to_string(size()) +
         " frame folders, " + std::to_string(num_classes_) + " classes";
}

// ---- VideoDataset ----------------------------------------------------------

VideoDataset::VideoDataset(VideoListOptions options, ClipOptions clip)
    : options_(std::move(options)), clip_(std::move(clip)) {
  num_classes_ = resolve_classes(options_.category_file, options_.num_classes);
  const std::string root = default_root(options_.root, options_.list_file);
  for_each_list_line(
      options_.list_file,
      [&](int64_t line_no,
          const std::string& line,
          const std::vector<std::string>& t) {
        int64_t label = 0;
        if (t.size() < 2 || !parse_int(t.back(), label)) {
          fail_at(
              options_.list_file,
              line_no,
              "expected 'path label', got '" + line + "'");
        }
        check_label(options_.list_file, line_no, label, num_classes_);
        std::string path = t[0];
        for (size_t i = 1; i + 1 < t.size(); ++i) {
          path += " " + t[i];
        }
        paths_.push_back(join(root, path));
        labels_.push_back(label);
      });
}

int64_t VideoDataset::size() const {
  return static_cast<int64_t>(paths_.size());
}

Sample VideoDataset::get(int64_t index, std::mt19937_64& rng) const {
  // Decode straight to the evaluation scale (TSN's preprocessing resizes
  // frames to it for training as well).
  VideoReader reader(paths_.at(index), clip_.scale_size);
  const int64_t n = reader.frame_count();
  if (n < 1) {
    throw std::runtime_error(
        paths_.at(index) + ": cannot determine the number of frames");
  }
  std::vector<int64_t> idx = tsn_segment_indices(
      n,
      clip_.num_segments,
      clip_.frames_per_segment,
      clip_.training ? &rng : nullptr);
  return make_clip_sample(
      reader.read_frames(idx), labels_.at(index), clip_, rng);
}

Sample VideoDataset::clip(int64_t index, int64_t k, int64_t clips) const {
  ClipOptions c = clip_;
  c.training = false;
  VideoReader reader(paths_.at(index), c.scale_size);
  std::mt19937_64 rng(0); // evaluation samples draw nothing
  return make_clip_sample(
      reader.read_frames(spread_segment_indices(
          reader.frame_count(), c.num_segments, k, clips)),
      labels_.at(index),
      c,
      rng);
}

std::string VideoDataset::describe() const {
  return options_.list_file + ": " + std::to_string(size()) + " videos, " +
         std::to_string(num_classes_) + " classes";
}

} // namespace cakes::data
