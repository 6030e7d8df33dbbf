// CPU kernels of cakes::shrunk_conv3d and its backward. Argument checks live
// here because every call, from C++ or Python, with or without autograd, ends
// up in these kernels. Over 500 lines because the forward, both gradients
// and the engine choice between Direct, Panel and Gemm share those checks.
#include "cakes/ops/shrunk_conv3d.h"
#include "conv_engine.h"
#include "direct_kernel.h"
#include "panel_kernel.h"
#include "profile_internal.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <chrono>
#include <optional>
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

// Times one kernel call into the active recording (cakes/ops/profile.h); does
// nothing when none is active.
class CallRecord {
public:
  CallRecord(
      bool backward,
      const at::Tensor& input,
      at::TensorList weights,
      at::IntArrayRef stride) {
    if (!recorder::recording())
      return;
    call_.emplace();
    call_->backward = backward;
    for (int a = 0; a < 5; ++a)
      call_->input[a] = input.size(a);
    for (int a = 0; a < 3; ++a)
      call_->stride[a] = stride[a];
    for (const auto& w : weights)
      call_->groups.push_back({w.size(0), w.size(2), w.size(3), w.size(4)});
    call_->macs = shrunk_conv3d_macs(input.sizes(), weights, stride);
    cpu_start_ = thread_cpu_ms();
    start_ = std::chrono::steady_clock::now();
  }
  void engine(const char* name) {
    if (call_)
      call_->engine = name;
  }
  void gradients(bool input, bool weight) {
    if (call_) {
      call_->grad_input = input;
      call_->grad_weight = weight;
    }
  }
  ~CallRecord() {
    if (!call_)
      return;
    call_->ms = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start_)
                    .count();
    call_->cpu_ms = thread_cpu_ms() - cpu_start_;
    recorder::record(std::move(*call_));
  }

private:
  std::optional<ConvCall> call_;
  std::chrono::steady_clock::time_point start_;
  double cpu_start_ = 0;
};

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

std::vector<int64_t> output_sizes(
    const at::Tensor& input, at::TensorList weights, at::IntArrayRef stride) {
  int64_t c_out = 0;
  for (const auto& w : weights)
    c_out += w.size(0);
  const Shape3 in = spatial(input);
  return {
      input.size(0),
      c_out,
      out_extent(in.d, stride[0]),
      out_extent(in.h, stride[1]),
      out_extent(in.w, stride[2])};
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

// The float32 AVX-512 engines; None: the general engine.
enum class Fast { None, Direct, Panel };

enum class Pass { Forward, InputGrad, WeightGrad };

// Which engine runs a pass of a float32 call (Engine::Auto), from
// single-thread CPU-time measurements at the shapes of I3D ResNet-50
// (`cakes bench kernels --threads 1`, docs/BENCHMARKS.md). The direct kernels
// vectorise over rows of the padded plane and read the input without
// packing: at least as fast down to 14-wide output rows (14x14, 256 channels,
// forward 17.2 vs 21.5 ms; pointwise 1024->256 5.6 vs 5.8 ms). The panel
// GEMMs pack positions densely: best on 7x7 maps, where a padded row wastes
// most of its lanes (512 channels, forward 16.7 vs 23.5 ms). The weight
// gradient's panel reduction beat the direct one at every shape measured.
Fast choose_fast(const detail::direct::Geometry& g, Pass pass) {
  if (pass == Pass::WeightGrad)
    return Fast::Panel;
  const int64_t w_out = (g.W - 1) / g.stride_w + 1;
  return w_out >= 14 ? Fast::Direct : Fast::Panel;
}

Fast fast_engine(const at::Tensor& input) {
  if (input.scalar_type() != at::kFloat || !detail::direct::available())
    return Fast::None;
  switch (engine()) {
  case Engine::Gemm:
    return Fast::None;
  case Engine::Direct:
    return Fast::Direct;
  case Engine::Panel:
    return Fast::Panel;
  case Engine::Auto:
    break;
  }
  return Fast::Panel; // refined per shape by choose_fast
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

// An inference epilogue (cakes/ops/fused_conv3d.h): out = max(0?, conv +
// bias[c] + residual). The panel engine applies it in registers before its
// single store; the other engines afterwards, in place.
struct Post {
  at::Tensor bias, residual; // contiguous, or undefined
  bool relu = false;
};

void apply_post(at::Tensor& y, const Post& post) {
  if (post.bias.defined())
    y.add_(post.bias.view({1, -1, 1, 1, 1}));
  if (post.residual.defined())
    y.add_(post.residual);
  if (post.relu)
    y.relu_();
}

at::Tensor forward_cpu(
    const at::Tensor& input_,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    const Post& post) {
  CallRecord rec(false, input_, weights, stride);
  const auto input = input_.contiguous();
  const auto out_sizes = output_sizes(input, weights, stride);
  rec.engine("empty");
  if (c10::multiply_integers(out_sizes) == 0)
    return at::zeros(out_sizes, input.options());

  if (Fast f = fast_engine(input); f != Fast::None) {
    auto output = at::empty(out_sizes, input.options());
    const auto c = direct_call(input, weights, stride, dilation);
    if (engine() == Engine::Auto)
      f = choose_fast(c.geom, Pass::Forward);
    rec.engine(f == Fast::Direct ? "direct" : "panel");
    if (f == Fast::Direct) {
      detail::direct::forward(
          c.geom, c.groups, input.data_ptr<float>(), output.data_ptr<float>());
      apply_post(output, post);
    } else {
      detail::panel::Epilogue ep;
      ep.bias = post.bias.defined() ? post.bias.data_ptr<float>() : nullptr;
      ep.residual =
          post.residual.defined() ? post.residual.data_ptr<float>() : nullptr;
      ep.relu = post.relu;
      detail::panel::forward(
          c.geom,
          c.groups,
          input.data_ptr<float>(),
          output.data_ptr<float>(),
          ep);
    }
    return output;
  }
  rec.engine("gemm");
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
  apply_post(output, post);
  return output;
}

at::Tensor shrunk_conv3d_cpu(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  check_args(input, weights, stride, dilation);
  return forward_cpu(input, weights, stride, dilation, {});
}

// An epilogue tensor of shrunk_conv3d_fused must have the input's dtype and
// device.
void check_like_input(
    const char* what, const at::Tensor& t, const at::Tensor& input) {
  TORCH_CHECK(
      t.scalar_type() == input.scalar_type() && t.device() == input.device(),
      "shrunk_conv3d_fused: ",
      what,
      " has dtype ",
      t.scalar_type(),
      " on ",
      t.device(),
      " but the input has ",
      input.scalar_type(),
      " on ",
      input.device());
}

at::Tensor shrunk_conv3d_fused_cpu(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    const c10::optional<at::Tensor>& bias,
    const c10::optional<at::Tensor>& residual,
    bool relu) {
  check_args(input, weights, stride, dilation);
  const auto out_sizes = output_sizes(input, weights, stride);
  Post post;
  post.relu = relu;
  if (bias && bias->defined()) {
    TORCH_CHECK(
        bias->dim() == 1 && bias->size(0) == out_sizes[1],
        "shrunk_conv3d_fused: expected bias of shape (",
        out_sizes[1],
        "), got ",
        sizes_str(bias->sizes()));
    check_like_input("bias", *bias, input);
    post.bias = bias->contiguous();
  }
  if (residual && residual->defined()) {
    TORCH_CHECK(
        residual->sizes() == at::IntArrayRef(out_sizes),
        "shrunk_conv3d_fused: expected residual of the output's shape ",
        sizes_str(out_sizes),
        ", got ",
        sizes_str(residual->sizes()));
    check_like_input("residual", *residual, input);
    post.residual = residual->contiguous();
  }
  return forward_cpu(input, weights, stride, dilation, post);
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
  CallRecord rec(true, input_, weights, stride);
  rec.gradients(output_mask[0], output_mask[1]);
  const auto input = input_.contiguous();
  const auto grad_out = grad_output.contiguous();
  const auto out_sizes = output_sizes(input, weights, stride);
  TORCH_CHECK(
      grad_out.sizes() == at::IntArrayRef(out_sizes),
      "shrunk_conv3d_backward: expected grad_output of shape ",
      sizes_str(out_sizes),
      ", got ",
      sizes_str(grad_out.sizes()));

  const bool empty = input.numel() == 0 || grad_out.numel() == 0;
  rec.engine(empty ? "empty" : "gemm");
  if (Fast f = empty ? Fast::None : fast_engine(input); f != Fast::None) {
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
    Fast f_in = f, f_w = f;
    if (engine() == Engine::Auto) {
      f_in = choose_fast(c.geom, Pass::InputGrad);
      f_w = choose_fast(c.geom, Pass::WeightGrad);
    }
    auto run = [&](Fast e, bool want_in, bool want_w) {
      (e == Fast::Direct ? detail::direct::backward : detail::panel::backward)(
          c.geom,
          c.groups,
          input.data_ptr<float>(),
          grad_out.data_ptr<float>(),
          want_in ? grad_in.data_ptr<float>() : nullptr,
          want_w ? ptrs : std::vector<float*>{});
    };
    const bool want_in = output_mask[0], want_w = output_mask[1];
    if (f_in == f_w || !want_in || !want_w) {
      const Fast e = want_in ? f_in : f_w;
      rec.engine(e == Fast::Direct ? "direct" : "panel");
      run(e, want_in, want_w);
    } else {
      rec.engine(f_in == Fast::Direct ? "direct+panel" : "panel+direct");
      run(f_in, true, false);
      run(f_w, false, true);
    }
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
  m.impl("shrunk_conv3d_fused", TORCH_FN(shrunk_conv3d_fused_cpu));
  m.impl("_shrunk_conv3d_backward", TORCH_FN(shrunk_conv3d_backward_cpu));
}

} // namespace cakes::ops
