#include "cakes/nn/epilogue.h"

#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>

namespace cakes::nn {
namespace {

// fn(channel, values, offset, length) over each (sample, channel) plane of y.
template <typename Fn> void per_channel(at::Tensor& y, Fn fn) {
  const int64_t n = y.size(0), c = y.size(1),
                inner = y.numel() / std::max<int64_t>(1, n * c);
  float* p = y.data_ptr<float>();
  at::parallel_for(0, n * c, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      fn(i % c, p + i * inner, i * inner, inner);
  });
}

} // namespace

bool fusable(const at::Tensor& y) {
  return y.scalar_type() == torch::kFloat && y.is_contiguous() &&
         y.dim() >= 2 && !(torch::GradMode::is_enabled() && y.requires_grad());
}

at::Tensor& epilogue_(
    at::Tensor& y,
    const at::Tensor& bias,
    const at::Tensor& residual,
    bool relu) {
  const bool one_pass = fusable(y) && (!bias.defined() || fusable(bias)) &&
                        (!residual.defined() ||
                         (fusable(residual) && residual.sizes() == y.sizes()));
  if (!one_pass) {
    if (bias.defined()) {
      std::vector<int64_t> shape(size_t(y.dim()), 1);
      shape[1] = -1;
      y.add_(bias.view(shape));
    }
    if (residual.defined())
      y.add_(residual);
    if (relu)
      y.relu_();
    return y;
  }
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  const float* r = residual.defined() ? residual.data_ptr<float>() : nullptr;
  // One loop per combination, so that each inner loop vectorises.
  auto run = [&](auto has_bias, auto has_residual, auto with_relu) {
    (void)has_bias, (void)has_residual, (void)with_relu; // types only
    per_channel(y, [&](int64_t ch, float* v, int64_t off, int64_t len) {
      [[maybe_unused]] const float add = b ? b[ch] : 0.f;
      (void)off; // read only with a residual
      for (int64_t k = 0; k < len; ++k) {
        float t = v[k];
        if constexpr (decltype(has_bias)::value)
          t += add;
        if constexpr (decltype(has_residual)::value)
          t += r[off + k];
        v[k] = decltype(with_relu)::value ? std::max(t, 0.f) : t;
      }
    });
  };
  auto with = [&](auto has_bias, auto has_residual) {
    relu ? run(has_bias, has_residual, std::true_type{})
         : run(has_bias, has_residual, std::false_type{});
  };
  auto with_bias = [&](auto has_bias) {
    r ? with(has_bias, std::true_type{}) : with(has_bias, std::false_type{});
  };
  b ? with_bias(std::true_type{}) : with_bias(std::false_type{});
  return y;
}

} // namespace cakes::nn
