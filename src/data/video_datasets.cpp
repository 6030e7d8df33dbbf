// The video data sets: TRN frame folders, video lists, class-per-folder
// trees and Something-Something V2 JSON. Over 500 lines because the layouts
// share label resolution (index or class name) and clip sampling.
#include "cakes/data/video_datasets.h"

#include "cakes/data/jpeg.h"
#include "cakes/data/video_reader.h"
#include "cakes/util/messages.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
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

// '_' read as ' ': the form names are compared in after an exact miss.
std::string spaced(std::string name) {
  std::replace(name.begin(), name.end(), '_', ' ');
  return name;
}

// The index of class name `label` in `names`, as written or with '_' read
// as ' '; -1 if none.
int64_t
name_index(const std::vector<std::string>& names, const std::string& label) {
  for (size_t k = 0; k < names.size(); ++k) {
    if (names[k] == label) {
      return static_cast<int64_t>(k);
    }
  }
  const std::string want = spaced(label);
  for (size_t k = 0; k < names.size(); ++k) {
    if (spaced(names[k]) == want) {
      return static_cast<int64_t>(k);
    }
  }
  return -1;
}

// The class names and count of `source`, or none of either when the list's
// own labels are to name the classes.
void classes_of(
    const ClassSource& source,
    std::vector<std::string>& names,
    int64_t& count) {
  names = !source.class_names.empty() ? source.class_names
          : !source.category_file.empty()
              ? read_category_file(source.category_file)
              : std::vector<std::string>{};
  count = names.empty() ? source.num_classes : int64_t(names.size());
  if (!names.empty() && source.num_classes > 0 && source.num_classes != count) {
    throw std::invalid_argument(
        (source.category_file.empty() ? std::string("the class names")
                                      : source.category_file) +
        " list " + std::to_string(count) + " classes but " +
        std::to_string(source.num_classes) + " were asked for");
  }
}

// Label tokens of a list (with their line numbers) -> class indices, and the
// class names/count: from `source`, or the sorted distinct name labels.
std::vector<int64_t> resolve_labels(
    const std::string& file,
    const std::vector<std::string>& tokens,
    const std::vector<int64_t>& lines,
    const ClassSource& source,
    std::vector<std::string>& names,
    int64_t& count) {
  classes_of(source, names, count);
  if (count <= 0) {
    std::set<std::string> distinct;
    for (size_t i = 0; i < tokens.size(); ++i) {
      int64_t v = 0;
      if (parse_int(tokens[i], v)) {
        fail_at(
            file,
            lines[i],
            "integer label '" + tokens[i] +
                "' but no class names or number of classes given "
                "(a category file, or name labels throughout)");
      }
      distinct.insert(tokens[i]);
    }
    if (distinct.empty()) {
      throw std::runtime_error(file + ": lists no videos");
    }
    names.assign(distinct.begin(), distinct.end());
    count = static_cast<int64_t>(names.size());
  }
  std::vector<int64_t> labels(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!parse_int(tokens[i], labels[i])) {
      labels[i] = name_index(names, tokens[i]);
      if (labels[i] < 0) {
        fail_at(
            file,
            lines[i],
            names.empty() ? "label '" + tokens[i] +
                                "' is not a number and no class names are given"
                          : "label '" + tokens[i] + "' is not one of the " +
                                std::to_string(count) + " class names");
      }
    }
    check_label(file, lines[i], labels[i], count);
  }
  return labels;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return s;
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

void FrameFolderDataset::parse_template() {
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
}

FrameFolderDataset::FrameFolderDataset(
    FrameFolderOptions options, ClipOptions clip)
    : options_(std::move(options)), clip_(std::move(clip)) {
  parse_template();
  const std::string root = default_root(options_.root, options_.list_file);
  std::vector<std::string> tokens;
  std::vector<int64_t> lines;
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
        // A folder name may itself contain spaces: it is everything before the
        // last two fields.
        std::string folder = t[0];
        for (size_t i = 1; i + 2 < t.size(); ++i) {
          folder += " " + t[i];
        }
        e.folder = join(root, folder);
        e.line = line_no;
        e.label = 0;
        entries_.push_back(std::move(e));
        tokens.push_back(t.back());
        lines.push_back(line_no);
      });
  const std::vector<int64_t> labels = resolve_labels(
      options_.list_file, tokens, lines, options_, class_names_, num_classes_);
  for (size_t i = 0; i < entries_.size(); ++i) {
    entries_[i].label = labels[i];
  }
}

FrameFolderDataset::FrameFolderDataset(
    FrameFolderOptions options,
    std::vector<FrameFolderEntry> entries,
    std::vector<std::string> class_names,
    ClipOptions clip)
    : options_(std::move(options)), clip_(std::move(clip)),
      entries_(std::move(entries)) {
  parse_template();
  class_names_ = std::move(class_names);
  num_classes_ = static_cast<int64_t>(class_names_.size());
  for (const auto& e : entries_) {
    check_label(options_.list_file, e.line, e.label, num_classes_);
  }
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

int64_t FrameFolderDataset::frame_count(int64_t index) const {
  const FrameFolderEntry& e = entries_.at(index);
  if (e.num_frames > 0) {
    return e.num_frames;
  }
  // Files named prefix + digits + suffix, as the extraction wrote them.
  int64_t n = 0;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(e.folder, ec)) {
    const std::string name = f.path().filename().string();
    if (name.size() > prefix_.size() + suffix_.size() &&
        name.compare(0, prefix_.size(), prefix_) == 0 &&
        name.compare(name.size() - suffix_.size(), suffix_.size(), suffix_) ==
            0 &&
        std::all_of(
            name.begin() + prefix_.size(),
            name.end() - suffix_.size(),
            [](char c) { return c >= '0' && c <= '9'; })) {
      ++n;
    }
  }
  if (ec || n == 0) {
    throw std::runtime_error(
        e.folder + ": no frames named like " + options_.frame_template +
        (ec ? " (" + ec.message() + ")" : std::string()) + " (entry " +
        std::to_string(e.line) + " of " + options_.list_file + ")");
  }
  return n;
}

Sample FrameFolderDataset::clip(int64_t index, int64_t k, int64_t clips) const {
  ClipOptions c = clip_;
  c.training = false;
  std::vector<at::Tensor> frames;
  for (auto i :
       spread_segment_indices(frame_count(index), c.num_segments, k, clips))
    frames.push_back(read_jpeg(frame_path(index, i)));
  std::mt19937_64 rng(0); // evaluation samples draw nothing
  return make_clip_sample(at::stack(frames), entries_.at(index).label, c, rng);
}

Sample FrameFolderDataset::get(int64_t index, std::mt19937_64& rng) const {
  const FrameFolderEntry& e = entries_.at(index);
  const int64_t num_frames = frame_count(index);
  std::vector<int64_t> idx = tsn_segment_indices(
      num_frames,
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
          std::to_string(num_frames) +
          (e.num_frames > 0 ? " (count from " : " (counted in the folder; ") +
          options_.list_file + ":" + std::to_string(e.line) + ")");
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

// ---- Video lists and class-per-folder trees ---------------------------------

LabeledVideos read_video_list(const VideoListOptions& options) {
  LabeledVideos v;
  v.source = options.list_file;
  const std::string root = default_root(options.root, options.list_file);
  std::vector<std::string> tokens;
  std::vector<int64_t> lines;
  for_each_list_line(
      options.list_file,
      [&](int64_t line_no,
          const std::string& line,
          const std::vector<std::string>& t) {
        if (t.size() < 2) {
          fail_at(
              options.list_file,
              line_no,
              "expected 'path label', got '" + line + "'");
        }
        std::string path = t[0];
        for (size_t i = 1; i + 1 < t.size(); ++i) {
          path += " " + t[i];
        }
        v.paths.push_back(join(root, path));
        tokens.push_back(t.back());
        lines.push_back(line_no);
      });
  v.labels = resolve_labels(
      options.list_file, tokens, lines, options, v.class_names, v.num_classes);
  return v;
}

bool is_video_file_name(const std::string& name) {
  static const std::set<std::string> kExtensions{
      ".mp4",
      ".avi",
      ".mkv",
      ".webm",
      ".mov",
      ".m4v",
      ".mpg",
      ".mpeg",
      ".ogv",
      ".flv",
      ".wmv",
      ".3gp"};
  return kExtensions.count(lower(fs::path(name).extension().string())) > 0;
}

std::vector<std::string> video_class_folders(const std::string& root) {
  if (!fs::is_directory(root)) {
    throw std::runtime_error(
        root + ": not a folder (expected root/<class>/<video>)");
  }
  std::vector<std::string> folders;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name[0] != '.' && e.is_directory()) {
      folders.push_back(name);
    }
  }
  if (ec) {
    throw std::runtime_error(root + ": cannot list (" + ec.message() + ")");
  }
  if (folders.empty()) {
    throw std::runtime_error(
        root + ": no class folders (expected root/<class>/<video>)");
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

LabeledVideos scan_video_folder(const VideoFolderOptions& options) {
  const fs::path root(options.root);
  const std::vector<std::string> folders = video_class_folders(options.root);
  LabeledVideos v;
  v.source = options.root;
  classes_of(options, v.class_names, v.num_classes);
  if (v.num_classes > 0 && v.class_names.empty()) {
    throw std::invalid_argument(
        options.root +
        ": a class-per-folder tree needs class names, not only their number");
  }
  if (v.class_names.empty()) {
    v.class_names = folders;
    v.num_classes = static_cast<int64_t>(folders.size());
  }
  for (const std::string& folder : folders) {
    const fs::path dir = root / folder;
    // A folder is a class name, also when it looks like a number.
    const int64_t label = name_index(v.class_names, folder);
    if (label < 0) {
      throw std::runtime_error(
          dir.string() + ": class folder is not one of the " +
          std::to_string(v.num_classes) + " class names");
    }
    std::vector<std::string> videos;
    std::error_code ec;
    fs::recursive_directory_iterator it(
        dir, fs::directory_options::follow_directory_symlink, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name[0] == '.') {
        it.disable_recursion_pending();
        continue;
      }
      if (is_video_file_name(name) && it->is_regular_file()) {
        videos.push_back(it->path().string());
      }
    }
    if (ec) {
      throw std::runtime_error(
          dir.string() + ": cannot list (" + ec.message() + ")");
    }
    if (videos.empty()) {
      throw std::runtime_error(
          dir.string() + ": class folder holds no video files (.mp4, .avi, "
                         ".webm, ...)");
    }
    std::sort(videos.begin(), videos.end());
    for (auto& p : videos) {
      v.paths.push_back(std::move(p));
      v.labels.push_back(label);
    }
  }
  return v;
}

VideoDataset::VideoDataset(LabeledVideos videos, ClipOptions clip)
    : videos_(std::move(videos)), clip_(std::move(clip)) {
  class_names_ = videos_.class_names;
  num_classes_ = videos_.num_classes;
}

VideoDataset::VideoDataset(const VideoListOptions& options, ClipOptions clip)
    : VideoDataset(read_video_list(options), std::move(clip)) {}

int64_t VideoDataset::size() const {
  return static_cast<int64_t>(videos_.paths.size());
}

Sample VideoDataset::get(int64_t index, std::mt19937_64& rng) const {
  const std::string& path = videos_.paths.at(index);
  // Decode straight to the evaluation scale (TSN's preprocessing resizes
  // frames to it for training as well).
  VideoReader reader(path, clip_.scale_size);
  const int64_t n = reader.frame_count();
  if (n < 1) {
    throw std::runtime_error(path + ": cannot determine the number of frames");
  }
  std::vector<int64_t> idx = tsn_segment_indices(
      n,
      clip_.num_segments,
      clip_.frames_per_segment,
      clip_.training ? &rng : nullptr);
  return make_clip_sample(
      reader.read_frames(idx), videos_.labels.at(index), clip_, rng);
}

Sample VideoDataset::clip(int64_t index, int64_t k, int64_t clips) const {
  ClipOptions c = clip_;
  c.training = false;
  const std::string& path = videos_.paths.at(index);
  VideoReader reader(path, c.scale_size);
  const int64_t n = reader.frame_count();
  if (n < 1) {
    throw std::runtime_error(path + ": cannot determine the number of frames");
  }
  std::mt19937_64 rng(0); // evaluation samples draw nothing
  return make_clip_sample(
      reader.read_frames(spread_segment_indices(n, c.num_segments, k, clips)),
      videos_.labels.at(index),
      c,
      rng);
}

std::string VideoDataset::describe() const {
  return videos_.source + ": " + std::to_string(size()) + " videos, " +
         std::to_string(num_classes_) + " classes";
}

// ---- Something-Something V2 ------------------------------------------------

namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(path + ": cannot open");
  }
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    std::replace(why.begin(), why.end(), '\n', ' ');
    throw std::runtime_error(path + ": not valid JSON (" + why + ")");
  }
}

// A JSON string or integer as text ("id": "78687" or 78687).
bool json_text(const nlohmann::json& j, std::string& out) {
  if (j.is_string()) {
    out = j.get<std::string>();
    return !out.empty();
  }
  if (j.is_number_integer()) {
    out = std::to_string(j.get<int64_t>());
    return true;
  }
  return false;
}

} // namespace

Ssv2List read_ssv2_list(const Ssv2Options& options) {
  const std::string labels_file =
      !options.labels_file.empty()
          ? options.labels_file
          : (fs::path(options.list_file).parent_path() /
             "something-something-v2-labels.json")
                .string();
  Ssv2List out;
  const nlohmann::json labels = read_json_file(labels_file);
  if (!labels.is_object() || labels.empty()) {
    throw std::runtime_error(
        labels_file + ": expected an object mapping class names to indices");
  }
  std::map<std::string, int64_t> index; // name -> class
  out.class_names.resize(labels.size());
  for (const auto& [name, value] : labels.items()) {
    std::string text;
    int64_t k = -1;
    if (!json_text(value, text) || !parse_int(text, k) || k < 0 ||
        k >= static_cast<int64_t>(labels.size()) ||
        !out.class_names[k].empty()) {
      throw std::runtime_error(
          labels_file + ": class '" + util::one_line(name, 80) +
          "' has index " + util::describe_json(value) +
          "; expected each of 0.." + std::to_string(labels.size() - 1) +
          " once");
    }
    out.class_names[k] = name;
    index[name] = k;
  }

  const nlohmann::json list = read_json_file(options.list_file);
  if (!list.is_array()) {
    throw std::runtime_error(
        options.list_file + ": expected a list of {\"id\", \"template\"}");
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& e = list[i];
    const std::string where =
        options.list_file + ": entry " + std::to_string(i + 1);
    std::string id;
    if (!e.is_object() || !e.contains("id") || !json_text(e["id"], id)) {
      throw std::runtime_error(where + " has no \"id\"");
    }
    if (!e.contains("template") || !e["template"].is_string()) {
      throw std::runtime_error(
          where + " (id " + util::one_line(id, 80) +
          ") has no \"template\" (the test list has no labels)");
    }
    // "Putting [something] on a surface" -> "Putting something on a surface"
    std::string name = e["template"].get<std::string>();
    name.erase(std::remove(name.begin(), name.end(), '['), name.end());
    name.erase(std::remove(name.begin(), name.end(), ']'), name.end());
    const auto it = index.find(name);
    if (it == index.end()) {
      throw std::runtime_error(
          where + " (id " + util::one_line(id, 80) + "): template '" +
          util::one_line(name, 80) + "' is not a class of " + labels_file);
    }
    out.ids.push_back(id);
    out.labels.push_back(it->second);
  }
  if (out.ids.empty()) {
    throw std::runtime_error(options.list_file + ": lists no videos");
  }
  return out;
}

std::shared_ptr<VideoClassDataset>
make_ssv2_dataset(const Ssv2Options& options, ClipOptions clip) {
  Ssv2List list = read_ssv2_list(options);
  const fs::path root = default_root(options.root, options.list_file);
  const bool frames = fs::is_directory(root / list.ids.front());
  std::vector<FrameFolderEntry> entries;
  LabeledVideos videos;
  for (size_t i = 0; i < list.ids.size(); ++i) {
    const fs::path base = root / list.ids[i];
    if (frames) {
      if (!fs::is_directory(base)) {
        throw std::runtime_error(
            base.string() + ": no frame folder for entry " +
            std::to_string(i + 1) + " of " + options.list_file);
      }
      entries.push_back(
          {base.string(), 0, list.labels[i], static_cast<int64_t>(i + 1)});
      continue;
    }
    std::string path;
    for (const char* ext : {".webm", ".mp4"}) {
      if (fs::exists(base.string() + ext)) {
        path = base.string() + ext;
        break;
      }
    }
    if (path.empty()) {
      throw std::runtime_error(
          base.string() + ": neither a frame folder nor " + base.string() +
          ".webm (entry " + std::to_string(i + 1) + " of " + options.list_file +
          ")");
    }
    videos.paths.push_back(path);
    videos.labels.push_back(list.labels[i]);
  }
  if (frames) {
    FrameFolderOptions f;
    f.list_file = options.list_file;
    f.root = root.string();
    f.frame_template = options.frame_template;
    f.first_frame = options.first_frame;
    return std::make_shared<FrameFolderDataset>(
        f, std::move(entries), std::move(list.class_names), std::move(clip));
  }
  videos.class_names = std::move(list.class_names);
  videos.num_classes = static_cast<int64_t>(videos.class_names.size());
  videos.source = options.list_file;
  return std::make_shared<VideoDataset>(std::move(videos), std::move(clip));
}

} // namespace cakes::data
