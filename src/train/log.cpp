#include "cakes/train/log.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <stdexcept>

namespace cakes::train {
namespace {

const std::set<std::string>& known_keys() {
  static const std::set<std::string> keys = {
      "kind",
      "epoch",
      "step",
      "steps",
      "samples",
      "loss",
      "lr",
      "grad_norm",
      "seconds",
      "samples_per_s",
      "loader_samples_per_s",
      "loader_wait_s",
      "skipped"};
  return keys;
}

} // namespace

std::string log_line(const EpochSummary& s) {
  // Sorted keys (nlohmann::json): the checkpoint keeps these lines and
  // resume writes them back through nlohmann::json, byte for byte.
  nlohmann::json j = {
      {"kind", "epoch"},
      {"epoch", s.epoch},
      {"step", s.step},
      {"steps", s.steps},
      {"samples", s.samples},
      {"loss", s.mean_loss},
      {"lr", s.lr},
      {"grad_norm", s.mean_grad_norm},
      {"seconds", s.seconds},
      {"samples_per_s", s.samples_per_second},
      {"loader_samples_per_s", s.loader_samples_per_second},
      {"loader_wait_s", s.loader_wait_seconds},
      {"skipped", s.skipped},
  };
  for (const auto& [k, v] : s.metrics)
    j[k] = v;
  return j.dump();
}

std::string step_log_line(const StepRecord& s) {
  return nlohmann::ordered_json{
      {"kind", "step"},
      {"epoch", s.epoch},
      {"step", s.step},
      {"step_in_epoch", s.step_in_epoch},
      {"steps_in_epoch", s.steps_in_epoch},
      {"loss", s.loss},
      {"lr", s.lr},
      {"samples_per_s", s.samples_per_second},
      {"seconds", s.seconds}}
      .dump();
}

namespace {

EpochSummary epoch_of(const nlohmann::json& j) {
  EpochSummary s;
  s.epoch = j.at("epoch").get<int64_t>();
  s.step = j.value("step", int64_t(0));
  s.steps = j.at("steps").get<int64_t>();
  s.samples = j.value("samples", int64_t(0));
  s.mean_loss = j.at("loss").get<double>();
  s.lr = j.value("lr", 0.0);
  s.mean_grad_norm = j.value("grad_norm", 0.0);
  s.seconds = j.at("seconds").get<double>();
  s.samples_per_second = j.value("samples_per_s", 0.0);
  s.loader_samples_per_second = j.value("loader_samples_per_s", 0.0);
  s.loader_wait_seconds = j.value("loader_wait_s", 0.0);
  s.skipped = j.value("skipped", int64_t(0));
  for (const auto& item : j.items())
    if (!known_keys().count(item.key()) && item.value().is_number())
      s.metrics[item.key()] = item.value().get<double>();
  return s;
}

StepRecord step_of(const nlohmann::json& j) {
  StepRecord s;
  s.epoch = j.at("epoch").get<int64_t>();
  s.step = j.at("step").get<int64_t>();
  s.step_in_epoch = j.at("step_in_epoch").get<int64_t>();
  s.steps_in_epoch = j.at("steps_in_epoch").get<int64_t>();
  s.loss = j.at("loss").get<double>();
  s.lr = j.value("lr", 0.0);
  s.samples_per_second = j.value("samples_per_s", 0.0);
  s.seconds = j.value("seconds", 0.0);
  return s;
}

// Sorted by `key`, the last of equal keys kept (stable sort, then the last of
// each run).
template <class T, class Key> void keep_later(std::vector<T>& v, Key key) {
  std::stable_sort(v.begin(), v.end(), [&](const T& a, const T& b) {
    return key(a) < key(b);
  });
  std::vector<T> out;
  for (auto& x : v) {
    if (!out.empty() && key(out.back()) == key(x))
      out.back() = std::move(x);
    else
      out.push_back(std::move(x));
  }
  v = std::move(out);
}

} // namespace

TrainingLog read_training_log(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw std::runtime_error("cannot read log '" + path + "'");
  TrainingLog out;
  std::string line;
  for (int64_t number = 1; std::getline(f, line); ++number) {
    if (line.empty())
      continue;
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.value("kind", std::string("epoch")) == "step")
        out.steps.push_back(step_of(j));
      else
        out.epochs.push_back(epoch_of(j));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(
          path + ":" + std::to_string(number) + ": not a training log line (" +
          e.what() + ")");
    }
  }
  keep_later(out.epochs, [](const EpochSummary& e) { return e.epoch; });
  keep_later(out.steps, [](const StepRecord& s) { return s.step; });
  return out;
}

std::vector<EpochSummary> read_log(const std::string& path) {
  return read_training_log(path).epochs;
}

} // namespace cakes::train
