#include "cakes/models/res_encoder_decoder.h"

#include "cakes/ops/shrunk_conv3d.h"

#include <torch/torch.h>

#include <map>
#include <stdexcept>

namespace cakes::models {
namespace {

constexpr int kLevels = 4;

int64_t width(int64_t base, int level) {
  return base << level;
}

// The one walk over the operation positions, in configuration order.
template <typename Fn>
void for_each_position(int64_t in_channels, int64_t base, Fn&& fn) {
  fn(Position{"stem", in_channels, base, {2, 2, 2}, ""});
  int64_t in = base;
  for (int l = 0; l < kLevels; ++l) {
    const std::string n = "enc" + std::to_string(l);
    const int64_t s = l == 0 ? 1 : 2;
    fn(Position{n + ".conv1", in, width(base, l), {s, s, s}, n + ".conv2"});
    fn(Position{n + ".conv2", width(base, l), width(base, l), {1, 1, 1}, ""});
    in = width(base, l);
  }
  for (int l = kLevels - 2; l >= 0; --l) {
    const std::string n = "dec" + std::to_string(l);
    fn(Position{
        n + ".conv1", width(base, l), width(base, l), {1, 1, 1}, n + ".conv2"});
    fn(Position{n + ".conv2", width(base, l), width(base, l), {1, 1, 1}, ""});
  }
}

} // namespace

std::vector<Position>
res_encoder_decoder_positions(int64_t in_channels, int64_t base) {
  std::vector<Position> out;
  for_each_position(
      in_channels, base, [&](Position p) { out.push_back(std::move(p)); });
  return out;
}

ResEncoderDecoderImpl::ResEncoderDecoderImpl(ResEncoderDecoderOptions options_)
    : options(std::move(options_)) {
  reset();
}

void ResEncoderDecoderImpl::reset() {
  using nn::OpLayer;
  using nn::OpLayerOptions;
  if (options.in_channels() <= 0 || options.num_classes() <= 0 ||
      options.base_width() <= 0)
    throw std::invalid_argument("res_encoder_decoder: in_channels, num_classes "
                                "and base_width must be positive");
  OpSpec spec = options.op();
  if (spec.candidates.empty())
    spec.candidates = volumetric_candidates();
  const auto positions = res_encoder_decoder_positions(
      options.in_channels(), options.base_width());
  const auto factory = make_op_factory(spec, positions);
  std::vector<LayerPlan> plans;
  for (size_t i = 0; i < positions.size(); ++i)
    plans.push_back(factory(i, positions[i]));

  // Blocks are plain holder modules so that names read "enc1.conv1".
  std::map<std::string, std::shared_ptr<torch::nn::Module>> holders;
  auto holder = [&](const std::string& name) {
    auto& h = holders[name];
    if (!h)
      h = register_module(name, std::make_shared<torch::nn::Module>(name));
    return h;
  };
  size_t i = 0;
  auto layer = [&](bool relu) {
    const auto& p = positions[i];
    // A position read by this one may be wider than its nominal width.
    const int64_t in = i > 0 && positions[i - 1].reader == p.name
        ? plans[i - 1].back().out_channels()
        : p.in_channels;
    OpLayer m(OpLayerOptions(in, plans[i++]).stride(p.stride).relu(relu));
    const auto dot = p.name.find('.');
    if (dot == std::string::npos)
      return register_module(p.name, m);
    return holder(p.name.substr(0, dot))
        ->register_module(p.name.substr(dot + 1), m);
  };
  stem_ = layer(true);
  enc_.assign(kLevels, {});
  for (int l = 0; l < kLevels; ++l) {
    const auto& p = positions[i];
    auto& b = enc_[l];
    b.conv1 = layer(true);
    b.conv2 = layer(false);
    if (p.in_channels != p.out_channels || p.stride[0] != 1)
      b.shortcut =
          holder("enc" + std::to_string(l))
              ->register_module(
                  "shortcut",
                  OpLayer(OpLayerOptions(
                              p.in_channels,
                              nn::plain_conv({1, 1, 1}, p.out_channels))
                              .stride(p.stride)
                              .relu(false)));
  }
  dec_.assign(kLevels - 1, {});
  up_.assign(kLevels - 1, nullptr);
  for (int l = kLevels - 2; l >= 0; --l) {
    const int64_t w = width(options.base_width(), l);
    up_[l] = register_module(
        "up" + std::to_string(l),
        OpLayer(
            OpLayerOptions(2 * w, nn::plain_conv({1, 1, 1}, w)).relu(false)));
    dec_[l].conv1 = layer(true);
    dec_[l].conv2 = layer(false);
  }
  const int64_t w0 = options.base_width();
  cls_weight_ = register_parameter(
      "classifier_weight",
      torch::randn({options.num_classes(), w0, 1, 1, 1}) /
          std::sqrt(double(w0)));
  cls_bias_ = register_parameter(
      "classifier_bias", torch::zeros({options.num_classes()}));
}

void ResEncoderDecoderImpl::check_input(const std::vector<int64_t>& s) const {
  if (s.size() != 5 || s[1] != options.in_channels())
    throw std::invalid_argument(
        "res_encoder_decoder: expected input (N, " +
        std::to_string(options.in_channels()) + ", D, H, W)");
  for (int a = 2; a < 5; ++a)
    if (s[a] <= 0 || s[a] % 16 != 0)
      throw std::invalid_argument(
          "res_encoder_decoder: input size " + std::to_string(s[2]) + "x" +
          std::to_string(s[3]) + "x" + std::to_string(s[4]) +
          " is not a multiple of 16 along every axis (4 levels of stride 2 "
          "below a "
          "stride-2 stem)");
}

torch::Tensor
ResEncoderDecoderImpl::run_block(Block& b, const torch::Tensor& x) {
  auto y = b.conv2->forward(b.conv1->forward(x));
  const auto identity = b.shortcut ? b.shortcut->forward(x) : x;
  return nn::add_relu_(y, identity);
}

torch::Tensor ResEncoderDecoderImpl::forward(const torch::Tensor& x) {
  check_input(x.sizes().vec());
  auto y = stem_->forward(x);
  std::vector<torch::Tensor> skips;
  for (auto& b : enc_) {
    y = run_block(b, y);
    skips.push_back(y);
  }
  for (int l = kLevels - 2; l >= 0; --l) {
    y = torch::upsample_trilinear3d(
        y, skips[l].sizes().slice(2), /*align_corners=*/false);
    y = up_[l]->forward(y).add_(skips[l]);
    y = run_block(dec_[l], y);
  }
  y = ops::shrunk_conv3d(y, {cls_weight_})
          .add_(cls_bias_.view({1, -1, 1, 1, 1}));
  return torch::upsample_trilinear3d(
      y, x.sizes().slice(2), /*align_corners=*/false);
}

std::vector<int64_t> ResEncoderDecoderImpl::cost_block(
    const Block& b,
    const std::string& name,
    const std::vector<int64_t>& in,
    CostReport& r) const {
  r.layers.push_back(b.conv1->cost(name + ".conv1", in));
  r.layers.push_back(
      b.conv2->cost(name + ".conv2", r.layers.back().output_shape));
  const auto out = r.layers.back().output_shape;
  if (b.shortcut)
    r.layers.push_back(b.shortcut->cost(name + ".shortcut", in));
  return out;
}

CostReport ResEncoderDecoderImpl::cost(const std::vector<int64_t>& in) const {
  check_input(in);
  CostReport r;
  r.layers.push_back(stem_->cost("stem", in));
  auto sizes = r.layers.back().output_shape;
  std::vector<std::vector<int64_t>> skips;
  for (int l = 0; l < kLevels; ++l) {
    sizes = cost_block(enc_[l], "enc" + std::to_string(l), sizes, r);
    skips.push_back(sizes);
  }
  for (int l = kLevels - 2; l >= 0; --l) {
    auto up = skips[l];
    up[1] = sizes[1];
    r.layers.push_back(up_[l]->cost("up" + std::to_string(l), up));
    sizes = cost_block(
        dec_[l], "dec" + std::to_string(l), r.layers.back().output_shape, r);
  }
  LayerCost cls;
  cls.name = "classifier";
  cls.operation = "conv 1x1x1 + bias, trilinear x2";
  cls.output_shape = {in[0], options.num_classes(), in[2], in[3], in[4]};
  cls.macs = sizes[0] * sizes[2] * sizes[3] * sizes[4] * cls_weight_.numel();
  cls.params = cls_weight_.numel() + cls_bias_.numel();
  r.layers.push_back(cls);
  return r;
}

void ResEncoderDecoderImpl::fold_batchnorm() {
  stem_->fold_batchnorm();
  for (auto* blocks : {&enc_, &dec_})
    for (auto& b : *blocks) {
      b.conv1->fold_batchnorm();
      b.conv2->fold_batchnorm();
      if (b.shortcut)
        b.shortcut->fold_batchnorm();
    }
  for (auto& u : up_)
    u->fold_batchnorm();
}

} // namespace cakes::models
