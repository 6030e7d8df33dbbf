#include "data_options.h"

#include "cakes/data/msd_dataset.h"
#include "cakes/data/video_datasets.h"

#include <stdexcept>

namespace cakes::cli {

void add_data_options(CLI::App* cmd, DataOptions& o) {
  cmd->add_option(
      "--frames-list", o.frames_list, "TRN frame-folder list (training)");
  cmd->add_option(
      "--frames-val-list",
      o.frames_val_list,
      "TRN frame-folder list (validation)");
  cmd->add_option(
      "--videos-list", o.videos_list, "video list `path label` (training)");
  cmd->add_option(
      "--videos-val-list", o.videos_val_list, "video list (validation)");
  cmd->add_option(
      "--msd", o.msd, "Medical Segmentation Decathlon folder (dataset.json)");
  cmd->add_option("--root", o.root, "folder the listed paths are relative to");
  cmd->add_option(
      "--categories", o.categories, "category.txt, one class per line");
  cmd->add_option(
      "--num-classes",
      o.num_classes,
      "number of classes (instead of --categories)");
  cmd->add_option(
      "--frame-template",
      o.frame_template,
      "frame file names, e.g. {:05d}.jpg");
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

DatasetHandle make_dataset(const DataOptions& o, bool training) {
  const int sources = int(!o.frames_list.empty()) +
                      int(!o.videos_list.empty()) + int(!o.msd.empty());
  if (sources == 0)
    throw std::invalid_argument(
        "no data: give --frames-list, --videos-list or --msd");
  if (sources > 1)
    throw std::invalid_argument("several data sources given: use one of "
                                "--frames-list, --videos-list, --msd");
  DatasetHandle h;
  if (!o.msd.empty()) {
    data::MsdOptions m;
    m.root = o.msd;
    m.training = training;
    m.patch.size = o.patch;
    m.patch.foreground_fraction = o.foreground;
    m.cache = o.cache;
    auto ds = std::make_shared<data::MsdDataset>(m);
    h.num_classes = ds->num_classes();
    h.dataset = ds;
    h.in_channels = static_cast<int64_t>(ds->modalities().size());
    h.volumetric = true;
    return h;
  }
  const data::ClipOptions clip = clip_options(o, training);
  if (!o.frames_list.empty()) {
    data::FrameFolderOptions f;
    f.list_file = training || o.frames_val_list.empty() ? o.frames_list
                                                        : o.frames_val_list;
    f.root = o.root;
    f.category_file = o.categories;
    f.num_classes = o.num_classes;
    f.frame_template = o.frame_template;
    auto ds = std::make_shared<data::FrameFolderDataset>(f, clip);
    h.num_classes = ds->num_classes();
    h.dataset = ds;
  } else {
    data::VideoListOptions v;
    v.list_file = training || o.videos_val_list.empty() ? o.videos_list
                                                        : o.videos_val_list;
    v.root = o.root;
    v.category_file = o.categories;
    v.num_classes = o.num_classes;
    auto ds = std::make_shared<data::VideoDataset>(v, clip);
    h.num_classes = ds->num_classes();
    h.dataset = ds;
  }
  return h;
}

} // namespace cakes::cli
