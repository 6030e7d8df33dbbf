#include "net_options.h"

#include "cakes/models/network_config.h"

#include <stdexcept>

namespace cakes::cli {

void add_net_options(CLI::App* c, NetOptions& o) {
  c->add_option(
      "--net", o.net, "network: i3d_resnet18/34/50/101, res_encoder_decoder");
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

models::ModelArgs resolve_model_args(
    const NetOptions& o,
    bool op_given,
    int64_t num_classes,
    int64_t in_channels) {
  if (!o.preset.empty() && !o.config.empty())
    throw std::invalid_argument("give --preset or --config, not both");
  models::ModelArgs m;
  m.network = o.net;
  m.num_classes = num_classes;
  m.in_channels = in_channels;
  m.width = o.width;
  m.op.op = o.op;
  if (!o.preset.empty() || !o.config.empty()) {
    const auto nc = o.preset.empty() ? models::load_network_config(o.config)
                                     : models::preset(o.preset);
    const std::string what = o.preset.empty() ? o.config : "preset " + o.preset;
    if (!nc.network.empty() && nc.network != o.net)
      throw std::invalid_argument(
          what + " is for " + nc.network + ", not " + o.net);
    if (op_given && o.op != nc.op)
      throw std::invalid_argument(
          what + " configures --op " + nc.op + ", not " + o.op);
    m.op.op = nc.op;
    m.op.configs = nc.blocks;
  }
  return m;
}

std::string network_id(const models::ModelArgs& a) {
  std::string s = a.network;
  if (a.width > 0)
    s += " width " + std::to_string(a.width);
  s += " classes " + std::to_string(a.num_classes);
  if (a.network.rfind("i3d_", 0) != 0)
    s += " in " + std::to_string(a.in_channels);
  s += " op " + a.op.op;
  if (!a.op.configs.empty()) {
    s += " [";
    for (size_t i = 0; i < a.op.configs.size(); ++i)
      s += (i ? " " : "") + a.op.configs[i].str();
    s += "]";
  }
  return s;
}

} // namespace cakes::cli
