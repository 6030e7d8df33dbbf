#include "cakes/models/zoo.h"

#include "cakes/models/i3d_resnet.h"
#include "cakes/models/model.h"
#include "cakes/models/res_encoder_decoder.h"

#include <stdexcept>

namespace cakes::models {
namespace {

const std::vector<NetworkInfo>& networks() {
  static const std::vector<NetworkInfo> all = {
      {"i3d_resnet18", true, 64, video_candidates()},
      {"i3d_resnet34", true, 64, video_candidates()},
      {"i3d_resnet50", true, 64, video_candidates()},
      {"i3d_resnet101", true, 64, video_candidates()},
      {"res_encoder_decoder", false, 16, volumetric_candidates()}};
  return all;
}

int64_t i3d_depth(const std::string& name) {
  for (int64_t d : {18, 34, 50, 101})
    if (name == "i3d_resnet" + std::to_string(d))
      return d;
  return 0;
}

template <typename Holder> Model wrap_network(Holder net, NetworkSpec spec) {
  Model m;
  m.spec = std::move(spec);
  m.module = net.ptr();
  m.network = net.ptr();
  m.forward = [net](const at::Tensor& x) mutable { return net->forward(x); };
  return m;
}

} // namespace

std::vector<std::string> network_names() {
  std::vector<std::string> names;
  for (const auto& n : networks())
    names.push_back(n.name);
  return names;
}

const NetworkInfo* find_network(const std::string& name) {
  for (const auto& n : networks())
    if (n.name == name)
      return &n;
  return nullptr;
}

const NetworkInfo& network_info(const std::string& name) {
  if (const auto* n = find_network(name))
    return *n;
  std::string known;
  for (const auto& n : network_names())
    known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument(
      "unknown network '" + name + "' (known: " + known + ")");
}

std::vector<Position> network_positions(const NetworkSpec& spec) {
  const NetworkSpec s = spec.canonical();
  network_info(s.network); // names the known ones on an unknown name
  if (const auto d = i3d_depth(s.network))
    return i3d_resnet_positions(d, s.width);
  return res_encoder_decoder_positions(s.in_channels, s.width);
}

Model build(const NetworkSpec& spec, const BuildOptions& options) {
  const NetworkSpec s = spec.canonical();
  network_info(s.network);
  if (const auto d = i3d_depth(s.network))
    return wrap_network(
        I3DResNet(I3DResNetOptions()
                      .depth(d)
                      .num_classes(s.num_classes)
                      .op(s.op)
                      .base_width(s.width)
                      .norm(options.norm)),
        s);
  return wrap_network(
      ResEncoderDecoder(ResEncoderDecoderOptions()
                            .in_channels(s.in_channels)
                            .num_classes(s.num_classes)
                            .base_width(s.width)
                            .op(s.op)
                            .norm(options.norm)),
      s);
}

CostReport Model::cost(const std::vector<int64_t>& input_sizes) const {
  if (!network)
    throw std::logic_error(
        "model '" + spec.network + "' has no network description (cost)");
  return network->cost(input_sizes);
}

void Model::fold_batchnorm() const {
  if (!network)
    throw std::logic_error(
        "model '" + spec.network + "' has no network description (fold)");
  network->fold_batchnorm();
}

std::vector<int64_t> Model::input_sizes(
    int64_t batch,
    int64_t frames_or_depth,
    int64_t height,
    int64_t width) const {
  return {
      batch,
      spec.video() ? 3 : spec.in_channels,
      frames_or_depth,
      height,
      width};
}

nn::OpLayer Network::layer(const std::string& name) const {
  for (const auto& [n, l] : layers())
    if (n == name)
      return l;
  throw std::invalid_argument("network has no layer '" + name + "'");
}

void Network::fold_batchnorm() {
  for (const auto& entry : layers())
    entry.second.ptr()->fold_batchnorm();
}

} // namespace cakes::models
