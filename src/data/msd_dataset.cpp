// Volume data sets: the Decathlon dataset.json layout and folders of NIfTI
// pairs, the validation split, resampling to a spacing and per-modality
// intensity normalisation. Over 500 lines because both layouts feed one
// MsdDataset and share its case list, split and caching.
#include "cakes/data/msd_dataset.h"

#include "cakes/data/resample.h"
#include "cakes/util/messages.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

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

// The cases of one dataset.json list: bare image paths (the test list) or
// {image, label} objects.
std::vector<MsdCase> json_cases(
    const nlohmann::json& j,
    const std::string& key,
    const std::string& root,
    const std::string& file) {
  if (!j.contains(key) || !j[key].is_array()) {
    throw std::runtime_error(file + ": no '" + key + "' list");
  }
  std::vector<MsdCase> cases;
  for (const auto& entry : j[key]) {
    MsdCase c;
    if (entry.is_string()) {
      c.image = resolve(root, entry.get<std::string>());
    } else if (
        entry.is_object() && entry.contains("image") &&
        entry["image"].is_string()) {
      c.image = resolve(root, entry["image"].get<std::string>());
      if (entry.contains("label") && entry["label"].is_string()) {
        c.label = resolve(root, entry["label"].get<std::string>());
      }
    } else {
      throw std::runtime_error(
          file + ": '" + key +
          "' entries must be image paths or {image, label} objects");
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

// 64-bit FNV-1a of the file name, mixed with the seed by splitmix64: the
// same on every platform (std::shuffle and the std distributions are not).
uint64_t split_key(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) {
    h = (h ^ ch) * 1099511628211ull;
  }
  uint64_t z = h ^ (seed + 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() &&
         s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// File name without its NIfTI extension, or "" for other files.
std::string nifti_stem(const std::string& name) {
  for (const char* ext : {".nii.gz", ".nii", ".hdr.gz", ".hdr"}) {
    if (ends_with(name, ext)) {
      return name.substr(0, name.size() - std::string(ext).size());
    }
  }
  return "";
}

// stem -> path of the NIfTI files directly in `dir` (hidden files, such as
// macOS's ._ copies, skipped). Two files of one stem are an error.
std::map<std::string, std::string> nifti_files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const std::string stem = nifti_stem(name);
    if (stem.empty() || name[0] == '.' || !e.is_regular_file()) {
      continue;
    }
    const auto [it, fresh] = out.emplace(stem, e.path().string());
    if (!fresh) {
      // Named in sorted order, so the message does not depend on the order
      // the folder lists them in.
      std::string a = it->second, b = e.path().string();
      if (b < a) {
        std::swap(a, b);
      }
      throw std::runtime_error(
          a + ": two files for case '" + stem + "' (also " + b + ")");
    }
  }
  if (ec) {
    throw std::runtime_error(
        dir.string() + ": cannot list (" + ec.message() + ")");
  }
  return out;
}

// The first of `names` that is a folder in `root`, or "".
std::string
subfolder(const fs::path& root, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (fs::is_directory(root / n)) {
      return (root / n).string();
    }
  }
  return "";
}

// "_0003" at the end of an nnU-Net image name: the channel number, else -1.
int channel_suffix(const std::string& stem) {
  if (stem.size() < 6 || stem[stem.size() - 5] != '_') {
    return -1;
  }
  int channel = 0;
  for (size_t i = stem.size() - 4; i < stem.size(); ++i) {
    if (stem[i] < '0' || stem[i] > '9') {
      return -1;
    }
    channel = channel * 10 + (stem[i] - '0');
  }
  return channel;
}

// Shortest decimal form ("0.2", "1.5x1.5x3") for messages.
std::string join_numbers(const std::vector<double>& s) {
  std::ostringstream out;
  for (size_t i = 0; i < s.size(); ++i) {
    out << (i ? "x" : "") << s[i];
  }
  return out.str();
}

} // namespace

MsdDataset::MsdDataset(MsdOptions options) : options_(std::move(options)) {
  const std::string& split = options_.split;
  if (split != "training" && split != "validation" && split != "test") {
    throw std::invalid_argument(
        "volume split '" + split +
        "' is not one of training, validation, test");
  }
  if (!(options_.val_fraction >= 0.0 && options_.val_fraction < 1.0)) {
    throw std::invalid_argument(
        "val_fraction must be in [0, 1), got " +
        std::to_string(options_.val_fraction));
  }
  if (!options_.spacing.empty()) {
    if (options_.spacing.size() != 3) {
      throw std::invalid_argument("spacing needs 3 values (i, j, k)");
    }
    for (double s : options_.spacing) {
      if (!(s > 0) || !std::isfinite(s)) {
        throw std::invalid_argument(
            "spacing must be three positive numbers, got " +
            join_numbers(options_.spacing));
      }
    }
  }
  const std::string file = (fs::path(options_.root) / "dataset.json").string();
  if (fs::exists(file)) {
    read_dataset_json(file);
  } else {
    scan_pair_folders();
  }
  cache_.resize(cases_.size());
}

void MsdDataset::read_dataset_json(const std::string& file) {
  source_ = file;
  if (!options_.modalities.empty() || !options_.label_names.empty() ||
      options_.num_classes > 0) {
    throw std::invalid_argument(
        file +
        " names the modalities and labels: the modality, label names and "
        "number of classes are for folders without one");
  }
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
  if (options_.split == "test") {
    cases_ = json_cases(j, "test", options_.root, file);
    split_.rule = "test list";
    return;
  }
  std::vector<MsdCase> training =
      json_cases(j, "training", options_.root, file);
  // An empty "validation" list (some generated datalists carry one) counts
  // as none, so evaluation never runs on zero cases.
  if (j.contains("validation") &&
      !(j["validation"].is_array() && j["validation"].empty())) {
    std::vector<MsdCase> validation =
        json_cases(j, "validation", options_.root, file);
    split_.rule = "validation list";
    for (const auto& c : validation) {
      split_.validation.push_back(c.image);
    }
    cases_ = options_.split == "validation" ? std::move(validation)
                                            : std::move(training);
    return;
  }
  hold_out(std::move(training));
}

void MsdDataset::scan_pair_folders() {
  const fs::path root(options_.root);
  source_ = options_.root;
  name_ = root.filename().empty() ? root.parent_path().filename().string()
                                  : root.filename().string();
  if (!fs::is_directory(root)) {
    throw std::runtime_error(options_.root + ": no such folder");
  }
  const std::string images_dir = options_.split == "test"
                                     ? subfolder(root, {"imagesTs"})
                                     : subfolder(root, {"images", "imagesTr"});
  const std::string labels_dir = subfolder(root, {"labels", "labelsTr"});
  if (images_dir.empty() || (labels_dir.empty() && options_.split != "test")) {
    throw std::runtime_error(
        options_.root + ": neither dataset.json nor " +
        (options_.split == "test"
             ? std::string("an imagesTs/ folder")
             : std::string("images/ + labels/ (or imagesTr/ + labelsTr/) "
                           "folders of NIfTI pairs")));
  }
  if (options_.label_names.empty() && options_.num_classes <= 0) {
    throw std::invalid_argument(
        options_.root +
        ": without dataset.json the label names or the number of classes "
        "must be given (--categories or --num-classes)");
  }
  label_names_ = options_.label_names;
  if (label_names_.empty()) {
    for (int64_t k = 0; k < options_.num_classes; ++k) {
      label_names_.push_back(std::to_string(k));
    }
  } else if (
      options_.num_classes > 0 &&
      options_.num_classes != static_cast<int64_t>(label_names_.size())) {
    throw std::invalid_argument(
        options_.root + ": " + std::to_string(label_names_.size()) +
        " label names but " + std::to_string(options_.num_classes) +
        " classes");
  }
  modalities_ = options_.modalities.empty() ? std::vector<std::string>{"MRI"}
                                            : options_.modalities;

  const auto images = nifti_files(images_dir);
  if (images.empty()) {
    throw std::runtime_error(images_dir + ": no NIfTI files (.nii, .nii.gz)");
  }
  if (options_.split == "test") {
    for (const auto& [stem, path] : images) {
      cases_.push_back({path, ""});
    }
    split_.rule = "test list";
    return;
  }
  const auto labels = nifti_files(labels_dir);
  std::map<std::string, MsdCase> by_case; // sorted by case name
  for (const auto& [stem, path] : images) {
    std::string key = stem;
    if (!labels.count(key)) {
      // nnU-Net names images case_0000.nii.gz and labels case.nii.gz.
      const int channel = channel_suffix(stem);
      const std::string base =
          channel < 0 ? "" : stem.substr(0, stem.size() - 5);
      if (channel > 0 && labels.count(base)) {
        throw std::runtime_error(
            path +
            ": one file per channel (nnU-Net _0001, ...) is not supported; "
            "stack the channels of a case in one 4-D NIfTI");
      }
      if (channel != 0 || !labels.count(base)) {
        throw std::runtime_error(
            path + ": no label of the same name in " + labels_dir);
      }
      key = base;
    }
    if (by_case.count(key)) {
      throw std::runtime_error(
          path + ": a second image for the label " + labels.at(key));
    }
    by_case[key] = {path, labels.at(key)};
  }
  for (const auto& [stem, path] : labels) {
    if (!by_case.count(stem)) {
      throw std::runtime_error(
          path + ": no image of the same name in " + images_dir);
    }
  }
  std::vector<MsdCase> training;
  for (auto& [key, c] : by_case) {
    training.push_back(std::move(c));
  }
  hold_out(std::move(training));
}

void MsdDataset::hold_out(std::vector<MsdCase> training) {
  const int64_t n = static_cast<int64_t>(training.size());
  const int64_t held = std::clamp<int64_t>(
      std::llround(options_.val_fraction * double(n)),
      0,
      std::max<int64_t>(0, n - 1));
  split_.val_fraction = options_.val_fraction;
  split_.seed = options_.split_seed;
  if (held == 0) {
    split_.rule = "none";
    cases_ = std::move(training);
    return;
  }
  split_.rule = "val-fraction";
  std::vector<std::pair<uint64_t, std::string>> keys;
  for (const auto& c : training) {
    const std::string file = fs::path(c.image).filename().string();
    keys.emplace_back(split_key(options_.split_seed, file), c.image);
  }
  std::sort(keys.begin(), keys.end());
  std::set<std::string> chosen;
  for (int64_t i = 0; i < held; ++i) {
    chosen.insert(keys[i].second);
  }
  const bool want_validation = options_.split == "validation";
  for (auto& c : training) {
    const bool is_val = chosen.count(c.image) > 0;
    if (is_val) {
      split_.validation.push_back(c.image);
    }
    if (is_val == want_validation) {
      cases_.push_back(std::move(c));
    }
  }
}

int64_t MsdDataset::size() const {
  return static_cast<int64_t>(cases_.size());
}

Volume MsdDataset::read_image(int64_t index) const {
  return read_nifti(cases_.at(index).image);
}

at::Tensor network_input(
    const Volume& image,
    const std::vector<std::string>& modalities,
    const IntensityOptions& intensity,
    const std::vector<double>& spacing,
    const std::string& modality_source) {
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
  if (x.size(0) != static_cast<int64_t>(modalities.size())) {
    throw std::runtime_error(
        image.path + ": " + std::to_string(x.size(0)) + " channels but " +
        std::to_string(modalities.size()) + " modalities (from " +
        modality_source + ")");
  }
  x = normalize_intensities(x, modalities, intensity);
  if (!spacing.empty()) {
    if (spacing.size() != 3) {
      throw std::invalid_argument("spacing needs three sizes");
    }
    const Grid g = resampled_grid(
        {x.size(1), x.size(2), x.size(3)},
        image.affine,
        {spacing[0], spacing[1], spacing[2]});
    x = resample_trilinear(x, g.shape).contiguous();
  }
  return x;
}

at::Tensor MsdDataset::normalized_input(const Volume& image) const {
  return network_input(
      image,
      modalities_,
      options_.intensity,
      options_.spacing,
      source_ == options_.root ? std::string("the options") : source_);
}

Sample MsdDataset::load_case(int64_t index) const {
  const MsdCase& c = cases_.at(index);
  const Volume image = read_image(index);
  at::Tensor input = normalized_input(image);
  at::Tensor target;
  if (!c.label.empty()) {
    const Volume label = read_nifti(c.label);
    if (label.data.dim() != 3 ||
        !label.data.sizes().equals(image.data.sizes().slice(0, 3))) {
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
          " outside the " + std::to_string(num_classes()) + " labels of " +
          (source_ == options_.root ? std::string("the options") : source_));
    }
    target =
        resample_nearest(target, {input.size(1), input.size(2), input.size(3)});
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
  std::string s = name_ + " " + options_.split + ": " + std::to_string(size()) +
                  " cases, " + std::to_string(modalities_.size()) +
                  " modalities, " + std::to_string(num_classes()) + " labels";
  if (split_.rule == "validation list") {
    s += ", validation from the 'validation' list";
  } else if (split_.rule == "val-fraction") {
    s += ", " + std::to_string(split_.validation.size()) +
         " case(s) held out for validation (val fraction " +
         join_numbers({split_.val_fraction}) + ")";
  } else if (split_.rule == "none") {
    s += ", no held-out validation cases";
  }
  if (!options_.spacing.empty()) {
    s += ", resampled to " + join_numbers(options_.spacing);
  }
  return s;
}

} // namespace cakes::data
