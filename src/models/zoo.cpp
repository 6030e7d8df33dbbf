#include "cakes/models/zoo.h"

#include "cakes/models/i3d_resnet.h"
#include "cakes/models/res_encoder_decoder.h"

#include <stdexcept>

namespace cakes::models {
namespace {

template <typename Net> Model wrap(Net net, bool video, int64_t in_channels) {
  Model m;
  m.module = net.ptr();
  m.forward = [net](const torch::Tensor& x) mutable { return net->forward(x); };
  m.cost = [net](const std::vector<int64_t>& s) { return net->cost(s); };
  m.fold_batchnorm = [net]() mutable { net->fold_batchnorm(); };
  m.video = video;
  m.in_channels = in_channels;
  return m;
}

int64_t i3d_depth(const std::string& name) {
  for (int64_t d : {18, 34, 50, 101})
    if (name == "i3d_resnet" + std::to_string(d))
      return d;
  return 0;
}

[[noreturn]] void unknown(const std::string& name) {
  std::string known;
  for (const auto& n : network_names())
    known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument(
      "unknown network '" + name + "' (known: " + known + ")");
}

} // namespace

std::vector<std::string> network_names() {
  return {
      "i3d_resnet18",
      "i3d_resnet34",
      "i3d_resnet50",
      "i3d_resnet101",
      "res_encoder_decoder"};
}

std::vector<Position> network_positions(const ModelArgs& a) {
  if (const auto d = i3d_depth(a.network))
    return i3d_resnet_positions(d, a.width > 0 ? a.width : 64);
  if (a.network == "res_encoder_decoder")
    return res_encoder_decoder_positions(
        a.in_channels,
        a.width > 0 ? a.width : ResEncoderDecoderOptions().base_width());
  unknown(a.network);
}

Model make_model(const ModelArgs& a) {
  if (const auto d = i3d_depth(a.network))
    return wrap(
        I3DResNet(I3DResNetOptions()
                      .depth(d)
                      .num_classes(a.num_classes)
                      .op(a.op)
                      .base_width(a.width > 0 ? a.width : 64)),
        /*video=*/true,
        3);
  if (a.network == "res_encoder_decoder") {
    OpSpec op = a.op;
    if (op.candidates.empty())
      op.candidates = volumetric_candidates();
    return wrap(
        ResEncoderDecoder(ResEncoderDecoderOptions()
                              .in_channels(a.in_channels)
                              .num_classes(a.num_classes)
                              .base_width(
                                  a.width > 0
                                      ? a.width
                                      : ResEncoderDecoderOptions().base_width())
                              .op(op)),
        /*video=*/false,
        a.in_channels);
  }
  unknown(a.network);
}

} // namespace cakes::models
