#include "cakes/nn/op_layer.h"

#include "cakes/ops/shrunk_conv3d.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cakes::nn {

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
    std::vector<torch::Tensor> ws;
    for (const auto& g : plan[s].groups()) {
      const std::string name =
          (plan.size() == 1 ? "" : "stage" + std::to_string(s) + "_") +
          "weight_" + g.kernel.str();
      auto w =
          torch::empty({g.channels, c_in, g.kernel.d, g.kernel.h, g.kernel.w});
      // He initialisation over each channel's own fan-in.
      if (w.numel() > 0)
        w.normal_(0.0, std::sqrt(2.0 / double(c_in * g.kernel.volume())));
      ws.push_back(register_parameter(name, w));
    }
    stages_.push_back(std::move(ws));
    c_in = plan[s].conv_channels();
  }
  bn_ = register_module("bn", torch::nn::BatchNorm3d(c_in));
  folded_ = false;
  const auto& map = plan.back().output_index();
  out_index_ = gather_ = torch::Tensor();
  sum_blocks_ = 0;
  if (!map.empty()) {
    out_index_ = torch::tensor(map, torch::kLong);
    const int64_t n = int64_t(map.size()), out = out_channels();
    if (n == out) {
      std::vector<int64_t> inverse(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        inverse[size_t(map[size_t(i)])] = i;
      gather_ = torch::tensor(inverse, torch::kLong);
    } else {
      bool modulo = n % out == 0;
      for (int64_t i = 0; modulo && i < n; ++i)
        modulo = map[size_t(i)] == i % out;
      sum_blocks_ = modulo ? n / out : 0;
    }
  }
}

torch::Tensor OpLayerImpl::to_outputs(
    const torch::Tensor& y, const torch::Tensor& selected) const {
  auto sizes = y.sizes().vec();
  sizes[1] = out_channels();
  if (!selected.defined()) {
    if (gather_.defined())
      return y.index_select(1, gather_);
    if (sum_blocks_ > 0) {
      sizes.insert(sizes.begin() + 1, sum_blocks_);
      return y.reshape(sizes).sum(1);
    }
  }
  const auto index =
      selected.defined() ? out_index_.index_select(0, selected) : out_index_;
  return torch::zeros(sizes, y.options()).index_add(1, index, y);
}

void OpLayerImpl::select_outputs(torch::Tensor out_index) {
  if (out_index.defined()) {
    TORCH_CHECK(
        out_index.dim() == 1 && out_index.scalar_type() == torch::kLong,
        "OpLayer::select_outputs: expected a 1-D int64 index, got ",
        out_index.sizes(),
        " ",
        out_index.scalar_type());
    out_index = std::get<0>(out_index.sort());
  }
  select_out_ = out_index;
}

void OpLayerImpl::select_inputs(torch::Tensor in_index) {
  TORCH_CHECK(
      !in_index.defined() ||
          (in_index.dim() == 1 && in_index.scalar_type() == torch::kLong),
      "OpLayer::select_inputs: expected a 1-D int64 index");
  select_in_ = in_index;
}

// Sliced weights and BatchNorm entries: index_select keeps the gradient path
// to the full parameters, so only the selected entries receive gradients.
torch::Tensor OpLayerImpl::forward_selected(const torch::Tensor& x) {
  TORCH_CHECK(!folded_, "OpLayer: channel selection on a folded layer");
  const auto& st = options.stride();
  torch::Tensor y = x;
  for (size_t s = 0; s < stages_.size(); ++s) {
    std::vector<torch::Tensor> ws = stages_[s];
    if (s == 0 && select_in_.defined())
      for (auto& w : ws)
        w = w.index_select(1, select_in_);
    if (s + 1 == stages_.size() && select_out_.defined()) {
      int64_t offset = 0;
      for (auto& w : ws) {
        const int64_t c = stages_[s][&w - ws.data()].size(0);
        const auto in_group =
            select_out_.ge(offset).logical_and(select_out_.lt(offset + c));
        w = w.index_select(0, select_out_.masked_select(in_group) - offset);
        offset += c;
      }
    }
    const std::vector<int64_t> stride =
        s == 0 ? std::vector<int64_t>{st[0], st[1], st[2]}
               : std::vector<int64_t>{1, 1, 1};
    y = ops::shrunk_conv3d(y, ws, stride);
  }
  if (select_out_.defined()) {
    const auto& o = bn_->options;
    const auto& idx = select_out_;
    auto mean = bn_->running_mean.index_select(0, idx);
    auto var = bn_->running_var.index_select(0, idx);
    y = torch::batch_norm(
        y,
        o.affine() ? bn_->weight.index_select(0, idx) : torch::Tensor(),
        o.affine() ? bn_->bias.index_select(0, idx) : torch::Tensor(),
        mean,
        var,
        is_training(),
        o.momentum().value_or(0.1),
        o.eps(),
        /*cudnn_enabled=*/false);
    if (is_training()) {
      torch::NoGradGuard no_grad;
      bn_->running_mean.index_copy_(0, idx, mean);
      bn_->running_var.index_copy_(0, idx, var);
      bn_->num_batches_tracked.add_(1);
    }
    if (out_index_.defined())
      y = to_outputs(y, idx);
  } else {
    y = bn_(y);
    if (out_index_.defined())
      y = to_outputs(y, {});
  }
  return options.relu() ? torch::relu(y) : y;
}

torch::Tensor OpLayerImpl::forward(const torch::Tensor& x) {
  if (select_out_.defined() || select_in_.defined())
    return forward_selected(x);
  const auto& st = options.stride();
  torch::Tensor y = x;
  for (size_t s = 0; s < stages_.size(); ++s) {
    const std::vector<int64_t> stride =
        s == 0 ? std::vector<int64_t>{st[0], st[1], st[2]}
               : std::vector<int64_t>{1, 1, 1};
    y = ops::shrunk_conv3d(y, stages_[s], stride);
  }
  if (folded_) {
    TORCH_CHECK(
        !is_training(),
        "OpLayer: BatchNorm was folded; training is not possible");
    if (!out_index_.defined() && fusable(y))
      return bias_relu_(y, bias_, options.relu());
    y.add_(bias_.view({1, -1, 1, 1, 1}));
  } else {
    y = bn_(y);
  }
  if (out_index_.defined())
    y = to_outputs(y, {});
  return options.relu() ? torch::relu_(y) : y;
}

namespace {

// One pass over y instead of one per elementwise op: these passes are memory
// bound and cost the same in every variant of a network, so they pull time
// ratios towards 1.
template <typename Fn> void per_channel(torch::Tensor& y, Fn fn) {
  const int64_t n = y.size(0), c = y.size(1),
                inner = y.numel() / std::max<int64_t>(1, n * c);
  float* p = y.data_ptr<float>();
  at::parallel_for(0, n * c, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      fn(i % c, p + i * inner, i * inner, inner);
  });
}

} // namespace

bool fusable(const torch::Tensor& y) {
  return y.scalar_type() == torch::kFloat && y.is_contiguous() &&
         y.dim() >= 2 && !(torch::GradMode::is_enabled() && y.requires_grad());
}

torch::Tensor
bias_relu_(torch::Tensor& y, const torch::Tensor& bias, bool relu) {
  const float* b = bias.data_ptr<float>();
  per_channel(y, [&](int64_t ch, float* v, int64_t, int64_t len) {
    const float add = b[ch];
    if (relu)
      for (int64_t k = 0; k < len; ++k)
        v[k] = std::max(v[k] + add, 0.f);
    else
      for (int64_t k = 0; k < len; ++k)
        v[k] += add;
  });
  return y;
}

torch::Tensor add_relu_(torch::Tensor& y, const torch::Tensor& other) {
  if (!fusable(y) || !fusable(other) || other.sizes() != y.sizes())
    return torch::relu_(y.add_(other));
  const float* o = other.data_ptr<float>();
  per_channel(y, [&](int64_t, float* v, int64_t off, int64_t len) {
    for (int64_t k = 0; k < len; ++k)
      v[k] = std::max(v[k] + o[off + k], 0.f);
  });
  return y;
}

void OpLayerImpl::fold_batchnorm() {
  if (folded_)
    return;
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

models::LayerCost OpLayerImpl::cost(
    const std::string& name, const std::vector<int64_t>& in) const {
  models::LayerCost row;
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
  if (sum_blocks_ > 0)
    s += " summed per index to " + std::to_string(out_channels());
  else if (gather_.defined())
    s += " reordered";
  else if (out_index_.defined())
    s += " mapped to " + std::to_string(out_channels());
  return s;
}

} // namespace cakes::nn
