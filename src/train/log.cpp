#include "cakes/train/log.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <stdexcept>

namespace cakes::train {
namespace {

const std::set<std::string>& known_keys() {
  static const std::set<std::string> keys = {
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
  nlohmann::json j = {
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

std::vector<EpochSummary> read_log(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw std::runtime_error("cannot read log '" + path + "'");
  std::vector<EpochSummary> out;
  std::string line;
  for (int64_t number = 1; std::getline(f, line); ++number) {
    if (line.empty())
      continue;
    try {
      const auto j = nlohmann::json::parse(line);
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
      out.push_back(std::move(s));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(
          path + ":" + std::to_string(number) + ": not a training log line (" +
          e.what() + ")");
    }
  }
  return out;
}

} // namespace cakes::train
