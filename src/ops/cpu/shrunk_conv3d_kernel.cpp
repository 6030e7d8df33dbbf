// CPU kernels of cakes::shrunk_conv3d and its backward. Argument checks live
// here because every call, from C++ or Python, with or without autograd, ends
// up in these kernels.
#include "cakes/ops/shrunk_conv3d.h"
#include "conv_engine.h"
#include "direct_kernel.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <sstream>

namespace cakes::ops {
namespace {

using detail::ConvPlan;
using detail::Offset;
using detail::Shape3;
using detail::TermSpec;

std::string sizes_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

void check_args(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  TORCH_CHECK(
      input.dim() == 5,
      "shrunk_conv3d: expected input of rank 5 (N, C_in, D, H, W), got rank ",
      input.dim(),
      " with shape ",
      sizes_str(input.sizes()));
  TORCH_CHECK(
      input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
      "shrunk_conv3d: expected a float32 or float64 input, got ",
      input.scalar_type());
  TORCH_CHECK(
      !weights.empty(),
      "shrunk_conv3d: expected at least one weight tensor, got none");
  TORCH_CHECK(
      stride.size() == 3,
      "shrunk_conv3d: expected 3 strides (D, H, W), got ",
      stride.size());
  TORCH_CHECK(
      dilation.size() == 3,
      "shrunk_conv3d: expected 3 dilations (D, H, W), got ",
      dilation.size());
  for (int a = 0; a < 3; ++a) {
    TORCH_CHECK(
        stride[a] > 0,
        "shrunk_conv3d: expected positive strides, got ",
        stride);
    TORCH_CHECK(
        dilation[a] > 0,
        "shrunk_conv3d: expected positive dilations, got ",
        dilation);
  }
  const int64_t c_in = input.size(1);
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = weights[i];
    TORCH_CHECK(
        w.defined(), "shrunk_conv3d: weights[", i, "] is an undefined tensor");
    TORCH_CHECK(
        w.dim() == 5,
        "shrunk_conv3d: expected weights[",
        i,
        "] of rank 5 (c_i, C_in, kd, kh, kw), got shape ",
        sizes_str(w.sizes()));
    TORCH_CHECK(
        w.size(1) == c_in,
        "shrunk_conv3d: weights[",
        i,
        "] has ",
        w.size(1),
        " input channels (shape ",
        sizes_str(w.sizes()),
        ") but the input has C_in = ",
        c_in);
    for (int a = 2; a < 5; ++a)
      TORCH_CHECK(
          w.size(a) >= 1 && w.size(a) % 2 == 1,
          "shrunk_conv3d: weights[",
          i,
          "] has kernel extents ",
          sizes_str(w.sizes().slice(2)),
          "; expected each extent to be 1 or odd");
    TORCH_CHECK(
        w.scalar_type() == input.scalar_type(),
        "shrunk_conv3d: weights[",
        i,
        "] has dtype ",
        w.scalar_type(),
        " but the input has dtype ",
        input.scalar_type());
    TORCH_CHECK(
        w.device() == input.device(),
        "shrunk_conv3d: weights[",
        i,
        "] is on ",
        w.device(),
        " but the input is on ",
        input.device());
  }
}

Shape3 spatial(const at::Tensor& t) {
  return {t.size(2), t.size(3), t.size(4)};
}

int64_t out_extent(int64_t in, int64_t stride) {
  return in == 0 ? 0 : (in - 1) / stride + 1;
}

// Offsets of a kernel's taps in natural (kd, kh, kw) order, relative to the
// output position times the stride, with "same" padding dilation*(k-1)/2.
std::vector<Offset> kernel_taps(const at::Tensor& w, at::IntArrayRef dilation) {
  std::vector<Offset> taps;
  const int64_t kd = w.size(2), kh = w.size(3), kw = w.size(4);
  for (int64_t a = 0; a < kd; ++a)
    for (int64_t b = 0; b < kh; ++b)
      for (int64_t c = 0; c < kw; ++c)
        taps.push_back(
            {(a - kd / 2) * dilation[0],
             (b - kh / 2) * dilation[1],
             (c - kw / 2) * dilation[2]});
  return taps;
}

at::Tensor order_index(const std::vector<int>& order) {
  std::vector<int64_t> idx(order.begin(), order.end());
  return at::tensor(idx, at::kLong);
}

// Weight of one group as the forward engine wants it: [c][tap in plan
// order][C_in].
at::Tensor forward_matrix(const at::Tensor& w, const std::vector<int>& order) {
  const int64_t c = w.size(0), c_in = w.size(1);
  auto m = w.reshape({c, c_in, w.size(2) * w.size(3) * w.size(4)})
               .permute({0, 2, 1});
  return m.index_select(1, order_index(order)).contiguous();
}

// The same weight for the input gradient: [C_in][tap in plan order][c].
at::Tensor
backward_data_matrix(const at::Tensor& w, const std::vector<int>& order) {
  const int64_t c = w.size(0), c_in = w.size(1);
  auto m = w.reshape({c, c_in, w.size(2) * w.size(3) * w.size(4)})
               .permute({1, 2, 0});
  return m.index_select(1, order_index(order)).contiguous();
}

struct Forward {
  ConvPlan plan;
  std::vector<int64_t> offsets; // first output channel of each group
};

Forward make_forward_plan(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  const Shape3 in = spatial(input);
  const Shape3 out{
      out_extent(in.d, stride[0]),
      out_extent(in.h, stride[1]),
      out_extent(in.w, stride[2])};
  std::vector<TermSpec> specs;
  std::vector<int64_t> offsets;
  int64_t c_out = 0;
  for (const auto& w : weights) {
    offsets.push_back(c_out);
    specs.push_back(
        {0, input.size(1), c_out, w.size(0), kernel_taps(w, dilation)});
    c_out += w.size(0);
  }
  return {
      ConvPlan(
          input.size(1),
          in,
          c_out,
          out,
          {stride[0], stride[1], stride[2]},
          std::move(specs)),
      offsets};
}

bool use_direct(const at::Tensor& input, at::IntArrayRef stride) {
  return engine() == Engine::Auto && input.scalar_type() == at::kFloat &&
         detail::direct::available();
}

struct DirectCall {
  detail::direct::Geometry geom;
  std::vector<detail::direct::Group> groups;
  std::vector<at::Tensor> keep; // contiguous weights the groups point into
};

DirectCall direct_call(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  DirectCall c;
  int64_t c_out = 0;
  for (const auto& w : weights) {
    c.keep.push_back(w.contiguous());
    c.groups.push_back(
        {c.keep.back().data_ptr<float>(),
         w.size(0),
         w.size(2),
         w.size(3),
         w.size(4)});
    c_out += w.size(0);
  }
  c.geom = {
      input.size(0),
      input.size(1),
      c_out,
      input.size(2),
      input.size(3),
      input.size(4),
      dilation[0],
      dilation[1],
      dilation[2],
      stride[0],
      stride[1],
      stride[2]};
  return c;
}

at::Tensor shrunk_conv3d_cpu(
    const at::Tensor& input_,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  check_args(input_, weights, stride, dilation);
  const auto input = input_.contiguous();
  int64_t c_out = 0;
  for (const auto& w : weights)
    c_out += w.size(0);
  const Shape3 in = spatial(input);
  const std::vector<int64_t> out_sizes{
      input.size(0),
      c_out,
      out_extent(in.d, stride[0]),
      out_extent(in.h, stride[1]),
      out_extent(in.w, stride[2])};
  if (c10::multiply_integers(out_sizes) == 0)
    return at::zeros(out_sizes, input.options());

  if (use_direct(input, stride)) {
    auto output = at::empty(out_sizes, input.options());
    const auto c = direct_call(input, weights, stride, dilation);
    detail::direct::forward(
        c.geom, c.groups, input.data_ptr<float>(), output.data_ptr<float>());
    return output;
  }
  const Forward f = make_forward_plan(input, weights, stride, dilation);
  auto output = f.plan.needs_zero_output()
                    ? at::zeros(out_sizes, input.options())
                    : at::empty(out_sizes, input.options());
  std::vector<at::Tensor> mats;
  for (size_t i = 0; i < weights.size(); ++i)
    mats.push_back(forward_matrix(weights[i], f.plan.tap_order(i)));
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "shrunk_conv3d", [&] {
    std::vector<const scalar_t*> wp;
    for (const auto& m : mats)
      wp.push_back(m.data_ptr<scalar_t>());
    f.plan.forward<scalar_t>(
        input.size(0),
        input.data_ptr<scalar_t>(),
        wp,
        output.data_ptr<scalar_t>());
  });
  return output;
}

at::Tensor grad_input_cpu(
    const at::Tensor& grad_out,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  // Gather form: dX[ci, i] = sum_g sum_t W_g[co, ci, t] dY_g[co, i - off_t].
  // With a stride, the output gradient is first spread onto the input grid
  // (zeros between samples) so that the same stride-1 engine applies.
  at::Tensor dy = grad_out;
  const bool strided = stride[0] > 1 || stride[1] > 1 || stride[2] > 1;
  if (strided) {
    const int64_t Do = grad_out.size(2), Ho = grad_out.size(3),
                  Wo = grad_out.size(4);
    dy = at::zeros(
        {grad_out.size(0),
         grad_out.size(1),
         (Do - 1) * stride[0] + 1,
         (Ho - 1) * stride[1] + 1,
         (Wo - 1) * stride[2] + 1},
        grad_out.options());
    dy.slice(2, 0, c10::nullopt, stride[0])
        .slice(3, 0, c10::nullopt, stride[1])
        .slice(4, 0, c10::nullopt, stride[2])
        .copy_(grad_out);
  }
  std::vector<TermSpec> specs;
  int64_t c0 = 0;
  for (const auto& w : weights) {
    auto taps = kernel_taps(w, dilation);
    for (auto& t : taps)
      t = {-t.d, -t.h, -t.w};
    specs.push_back({c0, w.size(0), 0, input.size(1), std::move(taps)});
    c0 += w.size(0);
  }
  const ConvPlan plan(
      dy.size(1),
      spatial(dy),
      input.size(1),
      spatial(input),
      {1, 1, 1},
      std::move(specs));
  auto grad_in =
      plan.needs_zero_output() ? at::zeros_like(input) : at::empty_like(input);
  std::vector<at::Tensor> mats;
  for (size_t i = 0; i < weights.size(); ++i)
    mats.push_back(backward_data_matrix(weights[i], plan.tap_order(i)));
  AT_DISPATCH_FLOATING_TYPES(
      input.scalar_type(), "shrunk_conv3d_grad_input", [&] {
        std::vector<const scalar_t*> wp;
        for (const auto& m : mats)
          wp.push_back(m.data_ptr<scalar_t>());
        plan.forward<scalar_t>(
            input.size(0),
            dy.data_ptr<scalar_t>(),
            wp,
            grad_in.data_ptr<scalar_t>());
      });
  return grad_in;
}

std::vector<at::Tensor> grad_weights_cpu(
    const at::Tensor& grad_out,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  const Forward f = make_forward_plan(input, weights, stride, dilation);
  std::vector<at::Tensor> acc;
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = weights[i];
    acc.push_back(at::zeros(
        {w.size(0), w.size(2) * w.size(3) * w.size(4), w.size(1)},
        input.options()));
  }
  AT_DISPATCH_FLOATING_TYPES(
      input.scalar_type(), "shrunk_conv3d_grad_weight", [&] {
        std::vector<scalar_t*> gp;
        for (auto& a : acc)
          gp.push_back(a.data_ptr<scalar_t>());
        f.plan.weight_grad<scalar_t>(
            input.size(0),
            input.data_ptr<scalar_t>(),
            grad_out.data_ptr<scalar_t>(),
            gp);
      });
  std::vector<at::Tensor> grads;
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto& w = weights[i];
    // Undo the plan's tap order: [c][tap][C_in] -> (c, C_in, kd, kh, kw).
    auto natural = at::zeros_like(acc[i]);
    if (!f.plan.tap_order(i).empty()) // empty groups have no taps in the plan
      natural.index_copy_(1, order_index(f.plan.tap_order(i)), acc[i]);
    grads.push_back(natural.permute({0, 2, 1}).reshape(w.sizes()).contiguous());
  }
  return grads;
}

std::tuple<at::Tensor, std::vector<at::Tensor>> shrunk_conv3d_backward_cpu(
    const at::Tensor& grad_output,
    const at::Tensor& input_,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  check_args(input_, weights, stride, dilation);
  const auto input = input_.contiguous();
  const auto grad_out = grad_output.contiguous();
  int64_t c_out = 0;
  for (const auto& w : weights)
    c_out += w.size(0);
  const Shape3 in = spatial(input);
  const std::vector<int64_t> out_sizes{
      input.size(0),
      c_out,
      out_extent(in.d, stride[0]),
      out_extent(in.h, stride[1]),
      out_extent(in.w, stride[2])};
  TORCH_CHECK(
      grad_out.sizes() == at::IntArrayRef(out_sizes),
      "shrunk_conv3d_backward: expected grad_output of shape ",
      sizes_str(out_sizes),
      ", got ",
      sizes_str(grad_out.sizes()));

  const bool empty = input.numel() == 0 || grad_out.numel() == 0;
  if (!empty && use_direct(input, stride)) {
    // Both gradients in one call: they share one padded copy of grad_out.
    at::Tensor grad_in;
    if (output_mask[0])
      grad_in = at::empty_like(input);
    std::vector<at::Tensor> grad_w;
    std::vector<float*> ptrs;
    if (output_mask[1])
      for (const auto& w : weights) {
        grad_w.push_back(at::empty(
            w.sizes(),
            w.options().memory_format(at::MemoryFormat::Contiguous)));
        ptrs.push_back(grad_w.back().data_ptr<float>());
      }
    const auto c = direct_call(input, weights, stride, dilation);
    detail::direct::backward(
        c.geom,
        c.groups,
        input.data_ptr<float>(),
        grad_out.data_ptr<float>(),
        output_mask[0] ? grad_in.data_ptr<float>() : nullptr,
        ptrs);
    return {grad_in, grad_w};
  }
  at::Tensor grad_in;
  if (output_mask[0])
    grad_in = empty
                  ? at::zeros_like(input)
                  : grad_input_cpu(grad_out, input, weights, stride, dilation);
  std::vector<at::Tensor> grad_w;
  if (output_mask[1]) {
    if (empty) {
      for (const auto& w : weights)
        grad_w.push_back(at::zeros_like(w));
    } else {
      grad_w = grad_weights_cpu(grad_out, input, weights, stride, dilation);
    }
  }
  return {grad_in, grad_w};
}

} // namespace

TORCH_LIBRARY_IMPL(cakes, CPU, m) {
  m.impl("shrunk_conv3d", TORCH_FN(shrunk_conv3d_cpu));
  m.impl("_shrunk_conv3d_backward", TORCH_FN(shrunk_conv3d_backward_cpu));
}

} // namespace cakes::ops
