#include "cakes/models/res_encoder_decoder.h"

#include "walk.h"

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
    OpLayer m(OpLayerOptions(in, plans[i++])
                  .stride(p.stride)
                  .relu(relu)
                  .norm(options.norm()));
    layers_.emplace_back(p.name, m);
    const auto dot = p.name.find('.');
    if (dot == std::string::npos)
      return register_module(p.name, m);
    return holder(p.name.substr(0, dot))
        ->register_module(p.name.substr(dot + 1), m);
  };
  layers_.clear();
  stem_ = layer(true);
  enc_.assign(kLevels, {});
  for (int l = 0; l < kLevels; ++l) {
    const auto& p = positions[i];
    auto& b = enc_[l];
    // The second convolution's ReLU comes after the residual addition.
    b.conv1 = layer(true);
    b.conv2 = layer(true);
    if (p.in_channels != p.out_channels || p.stride[0] != 1) {
      const std::string name = "enc" + std::to_string(l);
      b.shortcut = holder(name)->register_module(
          "shortcut",
          OpLayer(OpLayerOptions(
                      p.in_channels, nn::plain_conv({1, 1, 1}, p.out_channels))
                      .stride(p.stride)
                      .relu(false)
                      .norm(options.norm())));
      layers_.emplace_back(name + ".shortcut", b.shortcut);
    }
  }
  dec_.assign(kLevels - 1, {});
  up_.assign(kLevels - 1, nullptr);
  for (int l = kLevels - 2; l >= 0; --l) {
    const int64_t w = width(options.base_width(), l);
    const std::string up = "up" + std::to_string(l);
    up_[l] = register_module(
        up,
        OpLayer(OpLayerOptions(2 * w, nn::plain_conv({1, 1, 1}, w))
                    .relu(false)
                    .norm(options.norm())));
    layers_.emplace_back(up, up_[l]);
    dec_[l].conv1 = layer(true);
    dec_[l].conv2 = layer(true);
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

template <class Run, class B>
typename Run::Value ResEncoderDecoderImpl::walk_block(
    B& b, Run& run, const std::string& name, const typename Run::Value& x) {
  auto y = run.layer(name + ".conv1", *b.conv1, x);
  return run.layer_with_residual(name + ".conv2", *b.conv2, y, [&] {
    return b.shortcut ? run.layer(name + ".shortcut", *b.shortcut, x) : x;
  });
}

template <class Self, class Run>
typename Run::Value ResEncoderDecoderImpl::walk(
    Self& self, Run& run, const typename Run::Value& x) {
  const auto& in = Run::sizes(x);
  self.check_input(in);
  auto y = run.layer("stem", *self.stem_, x);
  std::vector<typename Run::Value> skips;
  for (int l = 0; l < kLevels; ++l) {
    y = walk_block(self.enc_[l], run, "enc" + std::to_string(l), y);
    skips.push_back(y);
  }
  for (int l = kLevels - 2; l >= 0; --l) {
    y = run.upsample_like(y, skips[l]);
    y = run.layer_with_residual(
        "up" + std::to_string(l), *self.up_[l], y, [&] { return skips[l]; });
    y = walk_block(self.dec_[l], run, "dec" + std::to_string(l), y);
  }
  return run.voxel_classifier(
      "classifier", self.cls_weight_, self.cls_bias_, y, {in[2], in[3], in[4]});
}

at::Tensor ResEncoderDecoderImpl::forward(const at::Tensor& x) {
  TensorRun run;
  return walk(*this, run, x);
}

CostReport ResEncoderDecoderImpl::cost(const std::vector<int64_t>& in) const {
  CostRun run;
  walk(*this, run, in);
  return std::move(run.report);
}

} // namespace cakes::models
