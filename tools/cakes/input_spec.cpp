#include "input_spec.h"

#include "cakes/data/msd_dataset.h"
#include "cakes/data/resample.h"
#include "cakes/data/transforms.h"
#include "cakes/train/checkpoint.h"

#include <filesystem>
#include <stdexcept>
#include <vector>

namespace cakes::cli {

std::string input_section(const DataOptions& o, const DatasetHandle& data) {
  nlohmann::ordered_json j;
  if (data.volumetric) {
    j["kind"] = "volume";
    j["patch"] = o.patch;
    if (auto* msd = dynamic_cast<data::MsdDataset*>(data.dataset.get()))
      j["modalities"] = msd->modalities();
    j["ct_window"] = o.ct_window;
    j["zscore"] = o.zscore;
    j["spacing"] = o.spacing;
  } else {
    const auto clip = clip_options(o, false);
    j["kind"] = "video";
    j["frames"] = o.frames;
    j["size"] = o.size;
    j["scale"] = clip.scale_size;
    j["mean"] = clip.mean;
    j["std"] = clip.std;
    j["flip_swaps"] = o.flip_swaps;
  }
  j["class_names"] = data.class_names;
  return j.dump();
}

nlohmann::json read_input_section(const std::string& checkpoint) {
  const auto meta = train::read_checkpoint_meta(checkpoint);
  const auto it = meta.sections.find("input");
  if (it == meta.sections.end())
    return nullptr;
  try {
    auto j = nlohmann::json::parse(it->second);
    if (!j.is_object())
      throw std::invalid_argument("not an object");
    return j;
  } catch (const std::exception&) {
    throw std::invalid_argument(
        checkpoint + ": the checkpoint's input section is malformed");
  }
}

namespace {

template <class T> std::string show(const T& v) {
  return nlohmann::json(v).dump();
}

// The section's `key` into `value`; false (value untouched) without one.
template <class T>
bool recorded(const nlohmann::json& s, const char* key, T& value) {
  if (!s.is_object() || !s.contains(key))
    return false;
  try {
    value = s.at(key).get<T>();
  } catch (const std::exception&) {
    throw std::invalid_argument(
        std::string("the checkpoint's input section has a malformed '") + key +
        "'");
  }
  return true;
}

} // namespace

template <class T>
void take_recorded(
    const nlohmann::json& s,
    const char* key,
    const CLI::App* cmd,
    const char* flag,
    T& value,
    bool must_match) {
  T saved;
  if (!recorded(s, key, saved))
    return;
  if (cmd->count(flag) == 0) {
    value = saved;
    return;
  }
  if (must_match && value != saved)
    throw std::invalid_argument(
        std::string(flag) + " " + show(value) + " differs from the " +
        show(saved) + " the checkpoint's network was trained with (leave " +
        flag + " out)");
}

template void take_recorded<int64_t>(
    const nlohmann::json&,
    const char*,
    const CLI::App*,
    const char*,
    int64_t&,
    bool);
template void take_recorded<std::vector<int64_t>>(
    const nlohmann::json&,
    const char*,
    const CLI::App*,
    const char*,
    std::vector<int64_t>&,
    bool);
template void take_recorded<std::vector<double>>(
    const nlohmann::json&,
    const char*,
    const CLI::App*,
    const char*,
    std::vector<double>&,
    bool);
template void take_recorded<std::vector<std::string>>(
    const nlohmann::json&,
    const char*,
    const CLI::App*,
    const char*,
    std::vector<std::string>&,
    bool);
template void take_recorded<std::string>(
    const nlohmann::json&,
    const char*,
    const CLI::App*,
    const char*,
    std::string&,
    bool);

void apply_input_section(
    const nlohmann::json& s, const CLI::App* cmd, DataOptions& o) {
  if (!s.is_object())
    return;
  // More or fewer frames only changes how many segments are averaged; the
  // spatial input and the intensities are what the weights were fitted to.
  take_recorded(s, "frames", cmd, "--frames", o.frames, false);
  take_recorded(s, "size", cmd, "--size", o.size, true);
  take_recorded(s, "scale", cmd, "--scale", o.scale, true);
  take_recorded(s, "patch", cmd, "--patch", o.patch, false);
  take_recorded(s, "ct_window", cmd, "--ct-window", o.ct_window, true);
  take_recorded(s, "zscore", cmd, "--zscore", o.zscore, true);
  take_recorded(s, "spacing", cmd, "--spacing", o.spacing, true);
  // A folder of volume pairs names no classes (a Decathlon task's
  // dataset.json does, and then they may not be given): the checkpoint's.
  std::vector<std::string> names;
  if (!o.msd.empty() && o.categories.empty() && o.num_classes <= 0 &&
      !std::filesystem::exists(std::filesystem::path(o.msd) / "dataset.json") &&
      recorded(s, "class_names", names))
    o.num_classes = int64_t(names.size());
}

at::Tensor volume_input(
    const data::Volume& image,
    const nlohmann::json& section,
    const CLI::App* cmd,
    const std::string& modality) {
  std::vector<std::string> modalities;
  recorded(section, "modalities", modalities);
  const bool from_flag = modalities.empty();
  if (from_flag) {
    modalities.assign(
        size_t(image.data.dim() == 4 ? image.data.size(3) : 1), modality);
  } else if (cmd->count("--modality") > 0) {
    // infer's --modality is CT or MRI (any other modality is z-scored).
    for (const auto& m : modalities)
      if ((m == "CT") != (modality == "CT"))
        throw std::invalid_argument(
            "--modality " + show(modality) + " differs from the " +
            show(modalities) +
            " the checkpoint's network was trained with (leave --modality "
            "out)");
  }
  // The same normalisation and resampling as the training data set's
  // (data::network_input), from the recorded flags.
  DataOptions trained;
  recorded(section, "ct_window", trained.ct_window);
  recorded(section, "zscore", trained.zscore);
  recorded(section, "spacing", trained.spacing);
  return data::network_input(
      image,
      modalities,
      intensity_options(trained),
      trained.spacing,
      from_flag ? "--modality" : "the checkpoint's network");
}

models::Model checkpoint_model(
    const std::string& checkpoint,
    const models::NetworkSpec& from_flags,
    bool net_given,
    int64_t num_classes) {
  models::Model model;
  if (net_given) {
    model = models::build(from_flags);
    train::load_checkpoint_weights(checkpoint, model);
  } else {
    model = train::load_model(checkpoint);
  }
  if (num_classes > 0 && model.spec.num_classes != num_classes)
    throw std::invalid_argument(
        checkpoint + " holds a network of " +
        std::to_string(model.spec.num_classes) + " classes, the data have " +
        std::to_string(num_classes));
  return model;
}

} // namespace cakes::cli
