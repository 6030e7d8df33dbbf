// Autograd kernels of cakes::shrunk_conv3d and of the device-generic
// cakes::_shrunk_conv3d_generic: a torch::autograd::Function whose backward
// calls the backward op, so gradients work the same from C++ and from Python
// and on every device. Second derivatives are refused with a clear error, as
// torchvision's ops do: with create_graph=True the backward runs as a
// Function of its own whose backward throws.
#include "cakes/ops/shrunk_conv3d.h"

#include "../generic/shrunk_conv3d_generic.h"
#include "../shrunk_conv3d_check.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace cakes::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The fused op: forward and backward through the dispatcher (the CPU
// kernels, or the device-generic ones on other devices).
struct Dispatched {
  static at::Tensor forward(
      const at::Tensor& input,
      at::TensorList weights,
      at::IntArrayRef stride,
      at::IntArrayRef dilation) {
    return shrunk_conv3d(input, weights, stride, dilation);
  }
  static std::tuple<at::Tensor, std::vector<at::Tensor>> backward(
      const at::Tensor& grad_output,
      const at::Tensor& input,
      at::TensorList weights,
      at::IntArrayRef stride,
      at::IntArrayRef dilation,
      std::array<bool, 2> mask) {
    return shrunk_conv3d_backward(
        grad_output, input, weights, stride, dilation, mask);
  }
};

// cakes::_shrunk_conv3d_generic: the device-generic path on any device.
struct Generic {
  static at::Tensor forward(
      const at::Tensor& input,
      at::TensorList weights,
      at::IntArrayRef stride,
      at::IntArrayRef dilation) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("cakes::_shrunk_conv3d_generic", "")
                         .typed<decltype(shrunk_conv3d)>();
    return op.call(input, weights, stride, dilation);
  }
  static std::tuple<at::Tensor, std::vector<at::Tensor>> backward(
      const at::Tensor& grad_output,
      const at::Tensor& input,
      at::TensorList weights,
      at::IntArrayRef stride,
      at::IntArrayRef dilation,
      std::array<bool, 2> mask) {
    return detail::shrunk_conv3d_generic_backward(
        grad_output, input, weights, stride, dilation, mask);
  }
};

std::vector<at::Tensor> weights_of(const variable_list& saved) {
  return {saved.begin() + 1, saved.end()};
}

// The backward as a differentiable-looking node (used only when a graph of
// the gradients is requested): its own backward refuses.
template <class Impl>
class ShrunkConv3dBackwardFunction
    : public torch::autograd::Function<ShrunkConv3dBackwardFunction<Impl>> {
public:
  static variable_list forward(
      AutogradContext* ctx,
      const at::Tensor& grad_output,
      const at::Tensor& input,
      const at::TensorList& weights,
      std::vector<int64_t> stride,
      std::vector<int64_t> dilation) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [grad_input, grad_weights] = Impl::backward(
        grad_output, input, weights, stride, dilation, {true, true});
    variable_list out{grad_input};
    out.insert(out.end(), grad_weights.begin(), grad_weights.end());
    return out;
  }

  static variable_list
  backward(AutogradContext* ctx, const variable_list& grad_outputs) {
    TORCH_CHECK(
        false,
        "cakes::shrunk_conv3d: double backward (a gradient of its gradient, "
        "e.g. create_graph=True followed by another backward) is not "
        "supported");
    return {};
  }
};

template <class Impl>
class ShrunkConv3dFunction
    : public torch::autograd::Function<ShrunkConv3dFunction<Impl>> {
public:
  static variable_list forward(
      AutogradContext* ctx,
      const at::Tensor& input,
      const at::TensorList& weights,
      std::vector<int64_t> stride,
      std::vector<int64_t> dilation) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto output = Impl::forward(input, weights, stride, dilation);
    // channels_last_3d in, channels_last_3d out (the CPU kernel computes in
    // NCDHW).
    const auto format = detail::output_memory_format(input);
    if (!output.is_contiguous(format))
      output = output.contiguous(format);
    variable_list saved{input};
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["dilation"] = dilation;
    return {output};
  }

  static variable_list
  backward(AutogradContext* ctx, const variable_list& grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& input = saved[0];
    const auto weights = weights_of(saved);
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto dilation = ctx->saved_data["dilation"].toIntVector();
    variable_list grads;
    if (at::GradMode::is_enabled()) {
      grads = ShrunkConv3dBackwardFunction<Impl>::apply(
          grad_outputs[0], input, weights, stride, dilation);
    } else {
      // Below autograd: not every backend's autograd key falls through for
      // custom ops (Meta's does not).
      at::AutoDispatchBelowADInplaceOrView guard;
      bool any_weight = false;
      for (size_t i = 0; i < weights.size(); ++i)
        any_weight = any_weight || ctx->needs_input_grad(1 + i);
      auto [grad_input, grad_weights] = Impl::backward(
          grad_outputs[0],
          input,
          weights,
          stride,
          dilation,
          {ctx->needs_input_grad(0), any_weight});
      grads.push_back(grad_input);
      for (size_t i = 0; i < weights.size(); ++i)
        grads.push_back(any_weight ? grad_weights[i] : at::Tensor());
    }
    for (size_t i = 0; i < weights.size(); ++i)
      if (!ctx->needs_input_grad(1 + i))
        grads[1 + i] = at::Tensor();
    if (!ctx->needs_input_grad(0))
      grads[0] = at::Tensor();
    grads.emplace_back(); // stride
    grads.emplace_back(); // dilation
    return grads;
  }
};

template <class Impl>
at::Tensor autograd_kernel(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  return ShrunkConv3dFunction<Impl>::apply(
      input, weights, stride.vec(), dilation.vec())[0];
}

} // namespace

TORCH_LIBRARY_IMPL(cakes, Autograd, m) {
  m.impl("shrunk_conv3d", TORCH_FN(autograd_kernel<Dispatched>));
  m.impl("_shrunk_conv3d_generic", TORCH_FN(autograd_kernel<Generic>));
}

} // namespace cakes::ops
