// Schema and dispatcher entry points of cakes::shrunk_conv3d. Kernels live in
// cpu/ (the fused CPU computation), generic/ (per-group convolutions for every
// other device), meta/ (shapes), autocast/ (reduced precision policy) and
// autograd/ (differentiation), and are reached only through the dispatcher.
#include "cakes/ops/shrunk_conv3d.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <atomic>

namespace cakes::ops {

at::Tensor shrunk_conv3d(
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("cakes::shrunk_conv3d", "")
                       .typed<decltype(shrunk_conv3d)>();
  return op.call(input, weights, stride, dilation);
}

std::tuple<at::Tensor, std::vector<at::Tensor>> shrunk_conv3d_backward(
    const at::Tensor& grad_output,
    const at::Tensor& input,
    at::TensorList weights,
    at::IntArrayRef stride,
    at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("cakes::_shrunk_conv3d_backward", "")
                       .typed<decltype(shrunk_conv3d_backward)>();
  return op.call(grad_output, input, weights, stride, dilation, output_mask);
}

namespace {
std::atomic<Engine> g_engine{Engine::Auto};
}

void set_engine(Engine engine) {
  g_engine = engine;
}

Engine engine() {
  return g_engine;
}

int64_t shrunk_conv3d_macs(
    at::IntArrayRef input_sizes,
    at::TensorList weights,
    at::IntArrayRef stride) {
  TORCH_CHECK(input_sizes.size() == 5, "shrunk_conv3d_macs: expected 5 sizes");
  TORCH_CHECK(stride.size() == 3, "shrunk_conv3d_macs: expected 3 strides");
  // Sizes come from users (bench, info): check instead of wrapping.
  int64_t macs = input_sizes[0];
  auto times = [&macs](int64_t v) {
    TORCH_CHECK(
        v >= 0 && !__builtin_mul_overflow(macs, v, &macs),
        "shrunk_conv3d_macs: sizes are negative or their MACs overflow 64 "
        "bits");
  };
  times(1);
  for (int a = 0; a < 3; ++a) {
    const int64_t in = input_sizes[2 + a];
    TORCH_CHECK(
        stride[a] >= 1,
        "shrunk_conv3d_macs: stride must be >= 1, got ",
        stride[a]);
    times(in <= 0 ? 0 : (in - 1) / stride[a] + 1);
  }
  times(input_sizes[1]);
  int64_t per = 0;
  for (const auto& w : weights) {
    int64_t taps = 1;
    for (int64_t d : {w.size(0), w.size(2), w.size(3), w.size(4)})
      TORCH_CHECK(
          !__builtin_mul_overflow(taps, d, &taps),
          "shrunk_conv3d_macs: weight sizes overflow 64 bits");
    TORCH_CHECK(
        !__builtin_add_overflow(per, taps, &per),
        "shrunk_conv3d_macs: weight sizes overflow 64 bits");
  }
  times(per);
  return macs;
}

} // namespace cakes::ops

TORCH_LIBRARY(cakes, m) {
  m.def("shrunk_conv3d(Tensor input, Tensor[] weights, int[3] stride=[1,1,1], "
        "int[3] dilation=[1,1,1]) -> Tensor");
  m.def(
      "_shrunk_conv3d_backward(Tensor grad_output, Tensor input, "
      "Tensor[] weights, int[3] stride, int[3] dilation, bool[2] output_mask) "
      "-> (Tensor, Tensor[])");
  // The device-generic implementation (per-group convolutions) on any
  // device; what non-CPU devices run for shrunk_conv3d. Tests force it on
  // CPU to compare it with the fused kernel.
  m.def("_shrunk_conv3d_generic(Tensor input, Tensor[] weights, "
        "int[3] stride=[1,1,1], int[3] dilation=[1,1,1]) -> Tensor");
}
