// Autograd kernel of cakes::shrunk_conv3d: a torch::autograd::Function whose
// backward calls the registered backward op, so gradients work the same from
// C++ and from Python.
#include "cakes/ops/shrunk_conv3d.h"

#include <torch/autograd.h>
#include <torch/library.h>

namespace cakes::ops {
namespace {

class ShrunkConv3dFunction
    : public torch::autograd::Function<ShrunkConv3dFunction> {
public:
  static torch::autograd::variable_list forward(
      torch::autograd::AutogradContext* ctx,
      const at::Tensor& input,
      const at::TensorList& weights,
      std::vector<int64_t> stride,
      std::vector<int64_t> dilation) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto output = shrunk_conv3d(input, weights, stride, dilation);
    std::vector<at::Tensor> saved{input};
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["dilation"] = dilation;
    return {output};
  }

  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      const torch::autograd::variable_list& grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto input = saved[0];
    const std::vector<at::Tensor> weights(saved.begin() + 1, saved.end());
    bool any_weight = false;
    for (size_t i = 0; i < weights.size(); ++i)
      any_weight = any_weight || ctx->needs_input_grad(1 + i);
    auto [grad_in, grad_w] = shrunk_conv3d_backward(
        grad_outputs[0],
        input,
        weights,
        ctx->saved_data["stride"].toIntVector(),
        ctx->saved_data["dilation"].toIntVector(),
        {ctx->needs_input_grad(0), any_weight});
    torch::autograd::variable_list grads{grad_in};
    for (size_t i = 0; i < weights.size(); ++i)
      grads.push_back(
          any_weight && ctx->needs_input_grad(1 + i) ? grad_w[i]
                                                     : at::Tensor());
    grads.emplace_back(); // stride
    grads.emplace_back(); // dilation
    return grads;
  }
};

at::Tensor shrunk_conv3d_autograd(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  return ShrunkConv3dFunction::apply(
      input, weights, stride.vec(), dilation.vec())[0];
}

} // namespace

TORCH_LIBRARY_IMPL(cakes, Autograd, m) {
  m.impl("shrunk_conv3d", TORCH_FN(shrunk_conv3d_autograd));
}

} // namespace cakes::ops
