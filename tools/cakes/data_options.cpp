#include "data_options.h"

#include "cakes/data/msd_dataset.h"
#include "cakes/data/video_datasets.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace cakes::cli {

void add_data_options(CLI::App* cmd, DataOptions& o) {
  cmd->add_option(
      "--frames-list", o.frames_list, "TRN frame-folder list (training)");
  cmd->add_option(
      "--frames-val-list",
      o.frames_val_list,
      "TRN frame-folder list (validation)");
  cmd->add_option(
      "--videos-list",
      o.videos_list,
      "video list `path label`, label an index or class name (training)");
  cmd->add_option(
      "--videos-val-list", o.videos_val_list, "video list (validation)");
  cmd->add_option(
      "--videos-dir",
      o.videos_dir,
      "class-per-folder videos root/<class>/<video> (training)");
  cmd->add_option(
      "--videos-val-dir",
      o.videos_val_dir,
      "class-per-folder videos (validation; classes of --videos-dir)");
  cmd->add_option(
      "--ssv2-list",
      o.ssv2_list,
      "Something-Something V2 something-something-v2-train.json");
  cmd->add_option(
      "--ssv2-val-list",
      o.ssv2_val_list,
      "Something-Something V2 something-something-v2-validation.json");
  cmd->add_option(
      "--ssv2-labels",
      o.ssv2_labels,
      "something-something-v2-labels.json (default: next to --ssv2-list)");
  cmd->add_option(
      "--msd",
      o.msd,
      "volumes: an MSD folder (dataset.json), or a folder of NIfTI pairs "
      "images/ + labels/ matched by file name");
  cmd->add_option("--root", o.root, "folder the listed paths are relative to");
  cmd->add_option(
      "--categories",
      o.categories,
      "class names, one per line (category.txt; label names of volumes)");
  cmd->add_option(
      "--num-classes",
      o.num_classes,
      "number of classes (instead of --categories)");
  cmd->add_option(
      "--frame-template",
      o.frame_template,
      "frame file names (default {:05d}.jpg; SSv2 {:06d}.jpg)");
  cmd->add_option(
      "--flip-swaps",
      o.flip_swaps,
      "label swaps on horizontal flip: none | ssv1 | pairs like 0:1,4:5");
  cmd->add_option("--frames", o.frames, "frames per clip (TSN segments)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--size", o.size, "crop size")->check(CLI::PositiveNumber);
  cmd->add_option(
      "--scale", o.scale, "short side before the centre crop (0: size*8/7)");
  cmd->add_option("--patch", o.patch, "MSD training patch D H W")->expected(3);
  cmd->add_option(
      "--foreground", o.foreground, "MSD foreground over-sampling rate");
  cmd->add_option(
         "--val-fraction",
         o.val_fraction,
         "volumes: fraction of cases held out for validation when "
         "dataset.json has no 'validation' list (default 0.2)")
      ->check(CLI::Range(0.0, 0.99));
  cmd->add_option(
         "--spacing",
         o.spacing,
         "volumes: resample to this voxel size along i j k (mm)")
      ->expected(3);
  cmd->add_option(
         "--ct-window",
         o.ct_window,
         "volumes: CT window LO HI in HU (default -1000 1000)")
      ->expected(2);
  cmd->add_option(
         "--zscore",
         o.zscore,
         "volumes: z-score every channel per volume over its nonzero voxels "
         "or all voxels (default: CT windowed to [0,1], others nonzero)")
      ->check(CLI::IsMember({"nonzero", "all"}));
  cmd->add_option(
      "--modality",
      o.modality,
      "volumes without dataset.json: CT or MRI, comma-separated per channel "
      "(default MRI)");
}

data::LabelSwaps parse_flip_swaps(const std::string& text) {
  if (text == "none" || text.empty())
    return {};
  if (text == "ssv1")
    return data::ssv1_flip_swaps();
  data::LabelSwaps swaps;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string pair = text.substr(start, comma - start);
    const size_t colon = pair.find(':');
    const auto is_int = [](const std::string& t) {
      return !t.empty() &&
             t.find_first_not_of("0123456789") == std::string::npos;
    };
    if (colon == std::string::npos || !is_int(pair.substr(0, colon)) ||
        !is_int(pair.substr(colon + 1)))
      throw std::invalid_argument(
          "bad --flip-swaps '" + text +
          "': expected none, ssv1 or pairs like 0:1,4:5");
    swaps.emplace_back(
        std::stoll(pair.substr(0, colon)), std::stoll(pair.substr(colon + 1)));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return swaps;
}

data::ClipOptions clip_options(const DataOptions& o, bool training) {
  data::ClipOptions clip;
  clip.num_segments = o.frames;
  clip.training = training;
  clip.crop_size = o.size;
  clip.scale_size = o.scale > 0 ? o.scale : o.size * 8 / 7;
  clip.flip_swaps = parse_flip_swaps(o.flip_swaps);
  return clip;
}

bool has_video_validation(const DataOptions& o) {
  return !o.frames_val_list.empty() || !o.videos_val_list.empty() ||
         !o.videos_val_dir.empty() || !o.ssv2_val_list.empty();
}

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t comma; (comma = text.find(',', start)) != std::string::npos;
       start = comma + 1)
    parts.push_back(text.substr(start, comma - start));
  parts.push_back(text.substr(start));
  return parts;
}

// The validation source's classes are the training source's: the same names
// in the same order, whatever classes the validation videos happen to cover.
data::ClassSource class_source(const DataOptions& o, bool training) {
  data::ClassSource c;
  c.category_file = o.categories;
  c.num_classes = o.num_classes;
  if (training || !o.categories.empty() || o.num_classes > 0)
    return c;
  if (!o.frames_list.empty() && !o.frames_val_list.empty()) {
    data::FrameFolderOptions f;
    f.list_file = o.frames_list;
    f.frame_template =
        o.frame_template.empty() ? "{:05d}.jpg" : o.frame_template;
    c.class_names =
        data::FrameFolderDataset(f, data::ClipOptions{}).class_names();
  } else if (!o.videos_list.empty() && !o.videos_val_list.empty()) {
    data::VideoListOptions v;
    v.list_file = o.videos_list;
    c.class_names = data::read_video_list(v).class_names;
  } else if (!o.videos_dir.empty() && !o.videos_val_dir.empty()) {
    c.class_names = data::video_class_folders(o.videos_dir);
  }
  return c;
}

} // namespace

data::IntensityOptions intensity_options(const DataOptions& o) {
  data::IntensityOptions i;
  if (!o.ct_window.empty()) {
    // Two values from the flag; a checkpoint's record may hold anything.
    if (o.ct_window.size() != 2)
      throw std::invalid_argument("--ct-window needs two values, LO HI");
    i.ct_lo = o.ct_window[0];
    i.ct_hi = o.ct_window[1];
    if (!(i.ct_hi > i.ct_lo))
      throw std::invalid_argument("--ct-window needs LO < HI");
  }
  if (!o.zscore.empty()) {
    i.zscore_set = true;
    i.zscore = o.zscore == "all" ? data::ZScoreRegion::All
                                 : data::ZScoreRegion::Nonzero;
  }
  return i;
}

namespace {

DatasetHandle make_volumes(const DataOptions& o, bool training) {
  data::MsdOptions m;
  m.root = o.msd;
  m.split = training ? "training" : "validation";
  m.training = training;
  m.patch.size = o.patch;
  m.patch.foreground_fraction = o.foreground;
  m.cache = o.cache;
  if (o.val_fraction >= 0)
    m.val_fraction = o.val_fraction;
  m.spacing = o.spacing;
  m.intensity = intensity_options(o);
  if (!o.modality.empty())
    m.modalities = split_commas(o.modality);
  if (!o.categories.empty())
    m.label_names = data::read_category_file(o.categories);
  m.num_classes = o.num_classes;
  auto ds = std::make_shared<data::MsdDataset>(m);
  DatasetHandle h;
  h.num_classes = ds->num_classes();
  h.class_names = ds->label_names();
  h.in_channels = static_cast<int64_t>(ds->modalities().size());
  h.volumetric = true;
  h.dataset = ds;
  return h;
}

} // namespace

DatasetHandle make_dataset(const DataOptions& o, bool training) {
  const int sources = int(!o.frames_list.empty()) +
                      int(!o.videos_list.empty()) + int(!o.videos_dir.empty()) +
                      int(!o.ssv2_list.empty()) + int(!o.msd.empty());
  if (sources == 0)
    throw std::invalid_argument(
        "no data: give --frames-list, --videos-list, --videos-dir, "
        "--ssv2-list or --msd");
  if (sources > 1)
    throw std::invalid_argument(
        "several data sources given: use one of --frames-list, "
        "--videos-list, --videos-dir, --ssv2-list, --msd");
  if (!o.msd.empty())
    return make_volumes(o, training);
  for (const auto& [given, flag] :
       {std::pair{o.val_fraction >= 0, "--val-fraction"},
        std::pair{!o.spacing.empty(), "--spacing"},
        std::pair{!o.ct_window.empty(), "--ct-window"},
        std::pair{!o.zscore.empty(), "--zscore"},
        std::pair{!o.modality.empty(), "--modality"}})
    if (given)
      throw std::invalid_argument(
          std::string(flag) + " applies to volumes (--msd), not to videos");
  const data::ClipOptions clip = clip_options(o, training);
  const data::ClassSource classes = class_source(o, training);
  const auto pick =
      [training](const std::string& train, const std::string& val) {
        return training || val.empty() ? train : val;
      };
  std::shared_ptr<data::VideoClassDataset> ds;
  if (!o.frames_list.empty()) {
    data::FrameFolderOptions f;
    static_cast<data::ClassSource&>(f) = classes;
    f.list_file = pick(o.frames_list, o.frames_val_list);
    f.root = o.root;
    f.frame_template =
        o.frame_template.empty() ? "{:05d}.jpg" : o.frame_template;
    ds = std::make_shared<data::FrameFolderDataset>(f, clip);
  } else if (!o.videos_list.empty()) {
    data::VideoListOptions v;
    static_cast<data::ClassSource&>(v) = classes;
    v.list_file = pick(o.videos_list, o.videos_val_list);
    v.root = o.root;
    ds = std::make_shared<data::VideoDataset>(v, clip);
  } else if (!o.videos_dir.empty()) {
    data::VideoFolderOptions v;
    static_cast<data::ClassSource&>(v) = classes;
    v.root = pick(o.videos_dir, o.videos_val_dir);
    ds = std::make_shared<data::VideoDataset>(data::scan_video_folder(v), clip);
  } else {
    if (!o.categories.empty() || o.num_classes > 0)
      throw std::invalid_argument(
          "--ssv2-list takes its classes from --ssv2-labels, not "
          "--categories / --num-classes");
    data::Ssv2Options s;
    s.list_file = pick(o.ssv2_list, o.ssv2_val_list);
    // Next to the training list for the validation list too: one class map.
    s.labels_file = o.ssv2_labels.empty()
                        ? (std::filesystem::path(o.ssv2_list).parent_path() /
                           "something-something-v2-labels.json")
                              .string()
                        : o.ssv2_labels;
    s.root = o.root;
    if (!o.frame_template.empty())
      s.frame_template = o.frame_template;
    ds = data::make_ssv2_dataset(s, clip);
  }
  // A swap naming a class the data set does not have would fail mid-epoch,
  // at the first flipped clip of that class, with LibTorch's words.
  for (const auto& [a, b] : clip.flip_swaps)
    if (std::max(a, b) >= ds->num_classes())
      throw std::invalid_argument(
          "--flip-swaps " + std::to_string(a) + ":" + std::to_string(b) +
          ": the data set has " + std::to_string(ds->num_classes()) +
          " classes (0.." + std::to_string(ds->num_classes() - 1) + ")");
  DatasetHandle h;
  h.num_classes = ds->num_classes();
  h.class_names = ds->class_names();
  h.dataset = ds;
  return h;
}

} // namespace cakes::cli
