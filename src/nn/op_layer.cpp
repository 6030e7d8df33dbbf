#include "cakes/nn/op_layer.h"

#include "cakes/nn/epilogue.h"
#include "cakes/ops/shrunk_conv3d.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace cakes::nn {
namespace {

std::string first_line(const c10::Error& e) {
  const std::string msg = e.what_without_backtrace();
  return msg.substr(0, msg.find('\n'));
}

} // namespace

OpLayerImpl::OpLayerImpl(OpLayerOptions options_)
    : options(std::move(options_)) {
  reset();
}

void OpLayerImpl::reset() {
  const auto& plan = options.plan();
  if (plan.empty())
    throw std::invalid_argument("OpLayer: empty plan");
  if (options.in_channels() <= 0)
    throw std::invalid_argument(
        "OpLayer: in_channels must be positive, got " +
        std::to_string(options.in_channels()));
  for (int a = 0; a < 3; ++a)
    if (options.stride()[a] < 1 || options.dilation()[a] < 1)
      throw std::invalid_argument(
          "OpLayer: stride and dilation must be positive");
  norm_ = options.norm() ? options.norm() : batch_norm();
  stages_.clear();
  int64_t c_in = options.in_channels();
  torch::NoGradGuard no_grad;
  for (size_t s = 0; s < plan.size(); ++s) {
    if (plan[s].conv_channels() <= 0)
      throw std::invalid_argument(
          "OpLayer: stage " + std::to_string(s) + " '" + plan[s].str() +
          "' has no output channels");
    if (s + 1 < plan.size() && !plan[s].output_index().empty())
      throw std::invalid_argument(
          "OpLayer: stage " + std::to_string(s) +
          " has an output_index; only the last stage may have one");
    std::vector<at::Tensor> ws;
    for (const auto& g : plan[s].groups()) {
      const std::string name =
          (plan.size() == 1 ? "" : "stage" + std::to_string(s) + "_") +
          "weight_" + g.kernel.str();
      auto w =
          torch::empty({g.channels, c_in, g.kernel.d, g.kernel.h, g.kernel.w});
      // He initialisation over each channel's own fan-in (C_in * sub-kernel
      // volume): a shrunk channel sees fewer inputs and gets a larger scale.
      if (w.numel() > 0)
        w.normal_(0.0, std::sqrt(2.0 / double(c_in * g.kernel.volume())));
      ws.push_back(register_parameter(name, w));
    }
    stages_.push_back(std::move(ws));
    c_in = plan[s].conv_channels();
  }
  bn_ = register_module("bn", torch::nn::BatchNorm3d(c_in));
  folded_ = false;
  gather_ = at::Tensor();
  // Config guarantees a permutation; the layer moves channel i to output
  // output_index[i], i.e. gathers output o from the inverse permutation.
  const auto& map = plan.back().output_index();
  if (!map.empty()) {
    std::vector<int64_t> inverse(map.size());
    for (size_t i = 0; i < map.size(); ++i)
      inverse.at(size_t(map[i])) = int64_t(i);
    gather_ = torch::tensor(inverse, torch::kLong);
  }
}

int64_t OpLayerImpl::out_channels() const {
  return extension_ ? extension_->out_channels(*this)
                    : options.plan().back().out_channels();
}

void OpLayerImpl::set_extension(std::shared_ptr<LayerExtension> extension) {
  if (extension && gather_.defined())
    throw std::invalid_argument(
        "OpLayer: an extension needs a layer without an output_index");
  if (extension && folded_)
    throw std::invalid_argument("OpLayer: an extension on a folded layer");
  extension_ = std::move(extension);
}

at::Tensor OpLayerImpl::convolve(
    const at::Tensor& x,
    const std::vector<std::vector<at::Tensor>>& stages) const {
  const auto& st = options.stride();
  const auto& di = options.dilation();
  at::Tensor y = x;
  // The op throws c10::Error on bad arguments; ours are
  // std::invalid_argument.
  try {
    for (size_t s = 0; s < stages.size(); ++s) {
      const std::vector<int64_t> stride =
          s == 0 ? std::vector<int64_t>{st[0], st[1], st[2]}
                 : std::vector<int64_t>{1, 1, 1};
      y = ops::shrunk_conv3d(y, stages[s], stride, {di[0], di[1], di[2]});
    }
  } catch (const c10::Error& e) {
    throw std::invalid_argument("OpLayer: " + first_line(e));
  }
  return y;
}

at::Tensor OpLayerImpl::normalize(const at::Tensor& y, const at::Tensor& idx) {
  const auto& o = bn_->options;
  const bool training = is_training() && o.track_running_stats();
  NormTensors t;
  t.eps = o.eps();
  t.training = training || !o.track_running_stats();
  if (training && bn_->num_batches_tracked.defined()) {
    torch::NoGradGuard no_grad;
    bn_->num_batches_tracked.add_(1);
  }
  // torch::nn::BatchNorm's rule: without a momentum, a cumulative average.
  t.momentum =
      o.momentum().has_value()
          ? *o.momentum()
          : (training ? 1.0 / double(bn_->num_batches_tracked.item<int64_t>())
                      : 0.0);
  if (!idx.defined()) {
    if (o.affine()) {
      t.weight = bn_->weight;
      t.bias = bn_->bias;
    }
    t.running_mean = bn_->running_mean;
    t.running_var = bn_->running_var;
    return norm_->forward(y, t);
  }
  // Sliced copies; index_select keeps the gradient path to the full
  // parameters, so only the selected entries receive gradients.
  if (o.affine()) {
    t.weight = bn_->weight.index_select(0, idx);
    t.bias = bn_->bias.index_select(0, idx);
  }
  if (bn_->running_mean.defined()) {
    t.running_mean = bn_->running_mean.index_select(0, idx);
    t.running_var = bn_->running_var.index_select(0, idx);
  }
  auto out = norm_->forward(y, t);
  if (training && t.running_mean.defined()) {
    torch::NoGradGuard no_grad;
    bn_->running_mean.index_copy_(0, idx, t.running_mean);
    bn_->running_var.index_copy_(0, idx, t.running_var);
  }
  return out;
}

at::Tensor OpLayerImpl::finish(at::Tensor y, const at::Tensor& residual) const {
  return epilogue_(y, at::Tensor(), residual, options.relu());
}

at::Tensor OpLayerImpl::to_outputs(const at::Tensor& y) const {
  return gather_.defined() ? y.index_select(1, gather_) : y;
}

at::Tensor
OpLayerImpl::forward(const at::Tensor& x, const at::Tensor& residual) {
  if (extension_)
    return extension_->forward(*this, x, residual);
  if (folded_)
    return forward_folded(x, residual);
  auto y = normalize(convolve(x, stages_));
  return finish(to_outputs(y), residual);
}

at::Tensor
OpLayerImpl::forward_folded(const at::Tensor& x, const at::Tensor& residual) {
  if (is_training())
    throw std::logic_error(
        "OpLayer: BatchNorm was folded; training is not possible");
  auto y = convolve(x, stages_);
  if (!gather_.defined())
    return epilogue_(y, bias_, residual, options.relu());
  y = to_outputs(epilogue_(y, bias_, {}, /*relu=*/false));
  return epilogue_(y, {}, residual, options.relu());
}

void OpLayerImpl::fold_batchnorm() {
  if (folded_)
    return;
  if (extension_)
    throw std::logic_error("OpLayer: cannot fold a layer with an extension");
  torch::NoGradGuard no_grad;
  const auto& o = bn_->options;
  const int64_t channels = options.plan().back().conv_channels();
  auto scale = torch::ones({channels});
  auto shift = torch::zeros({channels});
  const auto inv_std = (bn_->running_var + o.eps()).rsqrt();
  if (o.affine()) {
    scale = bn_->weight * inv_std;
    shift = bn_->bias - bn_->running_mean * scale;
  } else {
    scale = inv_std;
    shift = -bn_->running_mean * scale;
  }
  int64_t offset = 0;
  for (auto& w : stages_.back()) {
    const int64_t c = w.size(0);
    w.mul_(scale.narrow(0, offset, c).view({-1, 1, 1, 1, 1}));
    offset += c;
  }
  bias_ = register_buffer("folded_bias", shift.contiguous());
  folded_ = true;
}

std::vector<int64_t>
OpLayerImpl::output_sizes(const std::vector<int64_t>& in) const {
  const auto& st = options.stride();
  std::vector<int64_t> out = {in.at(0), out_channels(), 0, 0, 0};
  for (int a = 0; a < 3; ++a)
    out[2 + a] = in.at(2 + a) == 0 ? 0 : (in[2 + a] - 1) / st[a] + 1;
  return out;
}

LayerCost OpLayerImpl::cost(
    const std::string& name, const std::vector<int64_t>& in) const {
  LayerCost row;
  row.name = name;
  row.operation = describe();
  row.output_shape = output_sizes(in);
  const auto& out = row.output_shape;
  // Every stage produces the layer's output resolution (stride in stage 0).
  // Sizes come from users (info, derive): refuse what overflows 64 bits.
  auto product = [&name](std::initializer_list<int64_t> factors) {
    int64_t p = 1;
    for (int64_t f : factors)
      if (f < 0 || __builtin_mul_overflow(p, f, &p))
        throw std::invalid_argument(
            "layer " + name + ": input sizes too large (its MAC count " +
            "overflows 64 bits)");
    return p;
  };
  const int64_t positions = product({out[0], out[2], out[3], out[4]});
  int64_t c_in = options.in_channels();
  for (const auto& cfg : options.plan()) {
    if (__builtin_add_overflow(
            row.macs,
            product({positions, c_in, cfg.taps_times_channels()}),
            &row.macs))
      product({-1});
    c_in = cfg.conv_channels();
  }
  for (const auto& p : parameters())
    row.params += p.numel();
  return row;
}

std::string OpLayerImpl::describe() const {
  const auto& plan = options.plan();
  if (plan.size() == 1 && plan[0].groups().size() == 1) {
    const auto& k = plan[0].groups()[0].kernel;
    return "conv " + k.str();
  }
  // Groups only: an output_index would print one entry per channel.
  std::string s;
  for (const auto& c : plan)
    s += (s.empty() ? "" : " > ") + Config(c.groups()).str();
  if (gather_.defined())
    s += " reordered";
  if (extension_ && out_channels() != plan.back().conv_channels())
    s += " summed per index to " + std::to_string(out_channels());
  return s;
}

} // namespace cakes::nn
