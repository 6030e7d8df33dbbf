#include "cakes/data/msd_dataset.h"

#include "cakes/util/messages.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cakes::data {
namespace {

// Keys of "labels"/"modality" are decimal strings "0", "1", ...; the values
// become a dense vector indexed by them.
std::vector<std::string> indexed_names(
    const nlohmann::json& obj,
    const std::string& file,
    const std::string& key) {
  if (!obj.contains(key) || !obj[key].is_object() || obj[key].empty()) {
    throw std::runtime_error(file + ": missing or empty '" + key + "' object");
  }
  std::vector<std::string> names(obj[key].size());
  for (const auto& [k, v] : obj[key].items()) {
    size_t used = 0;
    long idx = -1;
    try {
      idx = std::stol(k, &used);
    } catch (const std::exception&) {
    }
    if (used != k.size() || idx < 0 || idx >= static_cast<long>(names.size()) ||
        !v.is_string()) {
      throw std::runtime_error(
          file + ": '" + key + "' must map 0.." +
          std::to_string(names.size() - 1) + " to names, got key '" +
          util::one_line(k, 40) + "'");
    }
    names[idx] = v.get<std::string>();
  }
  return names;
}

std::string resolve(const std::string& root, const std::string& rel) {
  if (fs::path(rel).is_absolute()) {
    return rel;
  }
  return (fs::path(root) / fs::path(rel).lexically_normal()).string();
}

} // namespace

MsdDataset::MsdDataset(MsdOptions options) : options_(std::move(options)) {
  const std::string file = (fs::path(options_.root) / "dataset.json").string();
  std::ifstream in(file);
  if (!in) {
    throw std::runtime_error(file + ": cannot open");
  }
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        file + ": not valid JSON (" + util::one_line(e.what()) + ")");
  }
  if (!j.is_object()) {
    throw std::runtime_error(
        file + ": expected a JSON object (the Decathlon dataset.json layout)");
  }
  name_ = fs::path(options_.root).filename().string();
  if (j.contains("name")) {
    if (!j["name"].is_string()) {
      throw std::runtime_error(file + ": 'name' must be a string");
    }
    name_ = j["name"].get<std::string>();
  }
  modalities_ = indexed_names(j, file, "modality");
  label_names_ = indexed_names(j, file, "labels");
  if (!j.contains(options_.split) || !j[options_.split].is_array()) {
    throw std::runtime_error(
        file + ": no '" + util::one_line(options_.split, 40) + "' list");
  }
  for (const auto& entry : j[options_.split]) {
    MsdCase c;
    if (entry.is_string()) { // the test split lists bare image paths
      c.image = resolve(options_.root, entry.get<std::string>());
    } else if (
        entry.is_object() && entry.contains("image") &&
        entry["image"].is_string()) {
      c.image = resolve(options_.root, entry["image"].get<std::string>());
      if (entry.contains("label") && entry["label"].is_string()) {
        c.label = resolve(options_.root, entry["label"].get<std::string>());
      }
    } else {
      throw std::runtime_error(
          file + ": '" + options_.split +
          "' entries must be image paths or {image, label} objects");
    }
    cases_.push_back(std::move(c));
  }
  cache_.resize(cases_.size());
}

int64_t MsdDataset::size() const {
  return static_cast<int64_t>(cases_.size());
}

Volume MsdDataset::read_image(int64_t index) const {
  return read_nifti(cases_.at(index).image);
}

at::Tensor MsdDataset::normalized_input(const Volume& image) const {
  at::Tensor x = image.data;
  if (x.dim() == 3) {
    x = x.unsqueeze(0);
  } else if (x.dim() == 4) {
    x = x.permute({3, 0, 1, 2}); // modalities on the 4th NIfTI axis
  } else {
    throw std::runtime_error(
        image.path + ": expected a 3-D or 4-D image, got " +
        std::to_string(x.dim()) + "-D");
  }
  if (x.size(0) != static_cast<int64_t>(modalities_.size())) {
    throw std::runtime_error(
        image.path + ": " + std::to_string(x.size(0)) +
        " channels but dataset.json lists " +
        std::to_string(modalities_.size()) + " modalities");
  }
  std::vector<at::Tensor> channels;
  for (int64_t c = 0; c < x.size(0); ++c) {
    at::Tensor ch = x.narrow(0, c, 1);
    channels.push_back(
        modalities_[c] == "CT"
            ? window_normalize(ch, options_.ct_lo, options_.ct_hi)
            : zscore_normalize(ch, /*nonzero_only=*/true));
  }
  return at::cat(channels, 0).contiguous();
}

Sample MsdDataset::load_case(int64_t index) const {
  const MsdCase& c = cases_.at(index);
  const Volume image = read_image(index);
  at::Tensor input = normalized_input(image);
  at::Tensor target;
  if (!c.label.empty()) {
    const Volume label = read_nifti(c.label);
    if (label.data.dim() != 3 ||
        !label.data.sizes().equals(input.sizes().slice(1))) {
      throw std::runtime_error(
          c.label + ": label shape " + std::to_string(label.data.dim()) +
          "-D does not match the image's spatial shape");
    }
    at::Tensor rounded = label.data.round();
    if (!at::equal(rounded, label.data)) {
      throw std::runtime_error(
          c.label + ": label volume has non-integer values");
    }
    target = rounded.to(at::kLong);
    const int64_t lo = target.min().item<int64_t>(),
                  hi = target.max().item<int64_t>();
    if (lo < 0 || hi >= num_classes()) {
      throw std::runtime_error(
          c.label + ": label value " + std::to_string(lo < 0 ? lo : hi) +
          " outside the " + std::to_string(num_classes()) +
          " labels of dataset.json");
    }
  }
  return {input, target};
}

Sample MsdDataset::get(int64_t index, std::mt19937_64& rng) const {
  Sample whole;
  if (options_.cache) {
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      whole = cache_.at(index);
    }
    if (!whole.input.defined()) {
      whole = load_case(index); // outside the lock: other cases load meanwhile
      std::lock_guard<std::mutex> lock(cache_mutex_);
      cache_.at(index) = whole;
    }
    if (!options_.training) { // callers own what they get
      whole.input = whole.input.clone();
      whole.target =
          whole.target.defined() ? whole.target.clone() : whole.target;
    }
  } else {
    whole = load_case(index);
  }
  at::Tensor input = whole.input, target = whole.target;
  if (options_.training) {
    if (!target.defined()) {
      const MsdCase& c = cases_.at(index);
      throw std::runtime_error(c.image + ": training needs a label volume");
    }
    std::tie(input, target) = random_patch(input, target, options_.patch, rng);
    std::tie(input, target) =
        random_flip(input, target, options_.flip_probability, rng);
    input = input.contiguous();
    target = target.contiguous();
  }
  return {input, target};
}

std::string MsdDataset::describe() const {
  return name_ + " " + options_.split + ": " + std::to_string(size()) +
         " cases, " + std::to_string(modalities_.size()) + " modalities, " +
         std::to_string(num_classes()) + " labels";
}

} // namespace cakes::data
