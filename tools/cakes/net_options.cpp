#include "net_options.h"

#include "cakes/models/network_config.h"

#include <nlohmann/json.hpp>
#include <torch/nn/modules/dropout.h>

#include <fstream>
#include <stdexcept>

namespace cakes::cli {

void add_net_options(CLI::App* c, NetOptions& o) {
  c->add_option(
      "--net",
      o.net,
      "network: i3d_resnet18/34/50/101, res_encoder_decoder (default: the "
      "one --config records, else i3d_resnet50)");
  c->add_option("--op", o.op, "operation: conv3d, conv2d, p3d, cakes");
  c->add_option(
      "--preset",
      o.preset,
      "built-in per-block configuration (implies --op cakes)");
  c->add_option(
      "--config", o.config, "network configuration file (docs/CONFIGS.md)");
  c->add_option(
       "--width",
       o.width,
       "base width (I3D: 64, encoder-decoder: 16; 0 = default)")
      ->check(CLI::NonNegativeNumber);
}

namespace {

// The "network" and "width" a configuration file records (cakes derive and
// the Python package write both); empty / 0 when absent. Malformed files are
// reported by load_network_config.
std::pair<std::string, int64_t> recorded_network(const std::string& path) {
  std::ifstream f(path);
  const auto j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  std::pair<std::string, int64_t> out{"", 0};
  if (!j.is_object())
    return out;
  if (j.contains("network") && j["network"].is_string())
    out.first = j["network"].get<std::string>();
  if (j.contains("width") && j["width"].is_number_integer())
    out.second = j["width"].get<int64_t>();
  return out;
}

} // namespace

void add_dropout_option(CLI::App* c, double& dropout) {
  c->add_option(
      "--dropout",
      dropout,
      "dropout probability in training (default: the network's, I3D 0.3)");
}

void apply_dropout(const models::Model& model, double dropout) {
  if (dropout < 0)
    return;
  if (!(dropout < 1))
    throw std::invalid_argument(
        "--dropout " + std::to_string(dropout) + " must be in [0, 1)");
  for (const auto& m : model.module->modules())
    if (auto* d = m->as<torch::nn::DropoutImpl>())
      d->options.p(dropout);
}

models::NetworkSpec resolve_network(
    const NetOptions& o,
    bool op_given,
    int64_t num_classes,
    int64_t in_channels) {
  if (!o.preset.empty() && !o.config.empty())
    throw std::invalid_argument("give --preset or --config, not both");
  models::NetworkSpec spec;
  spec.network = o.net;
  spec.width = o.width;
  if (!o.config.empty()) {
    const auto [net, width] = recorded_network(o.config);
    if (spec.network.empty())
      spec.network = net;
    if (width > 0 && spec.width > 0 && width != spec.width)
      throw std::invalid_argument(
          "--width " + std::to_string(spec.width) + " differs from the width " +
          std::to_string(width) + " " + o.config + " was derived at");
    if (width > 0)
      spec.width = width;
  }
  if (spec.network.empty())
    spec.network = "i3d_resnet50";
  spec.num_classes = num_classes;
  spec.in_channels = in_channels;
  spec.op.op = o.op;
  if (!o.preset.empty())
    return models::with_config(
        spec, models::preset(o.preset), "preset " + o.preset, op_given);
  if (!o.config.empty())
    return models::with_config(
        spec, models::load_network_config(o.config), o.config, op_given);
  return spec;
}

std::string op_label(const NetOptions& o, const models::NetworkSpec& spec) {
  return spec.op.op + (o.preset.empty() ? "" : " " + o.preset) +
         (o.config.empty() ? "" : " " + o.config);
}

} // namespace cakes::cli
