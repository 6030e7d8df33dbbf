#include "cakes/eval/sliding_window.h"
#include "cakes/util/check.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace cakes::eval {

namespace {

// (wd, wh, ww) weights, max 1: product of per-axis Gaussians.
at::Tensor window_weight(const SlidingWindowOptions& o) {
  auto opts = at::TensorOptions().dtype(at::kFloat);
  if (!o.gaussian) {
    return at::ones({o.window[0], o.window[1], o.window[2]}, opts);
  }
  at::Tensor w;
  for (int a = 0; a < 3; ++a) {
    const int64_t n = o.window[static_cast<size_t>(a)];
    const double sigma = std::max(1e-6, o.sigma_scale * static_cast<double>(n));
    at::Tensor x = at::arange(n, at::TensorOptions().dtype(at::kDouble)) -
                   (static_cast<double>(n) - 1) / 2;
    at::Tensor g = at::exp(-(x * x) / (2 * sigma * sigma));
    std::vector<int64_t> shape = {1, 1, 1};
    shape[static_cast<size_t>(a)] = n;
    g = g.reshape(shape);
    w = w.defined() ? w * g : g;
  }
  w = w / w.max();
  // Corners of a narrow Gaussian underflow towards 0; a voxel covered only by
  // corners must still get a finite average.
  return w.clamp_min(1e-12).to(at::kFloat);
}

// Calls sink(d0, avg) for consecutive slabs of rows d0.. of the output, avg
// (K, rows, H, W) float32, in increasing d0, covering exactly [0, D).
template <class Sink>
void run_slabs(
    const at::Tensor& volume,
    const WindowPredictor& predict,
    const SlidingWindowOptions& o,
    Sink&& sink) {
  CAKES_CHECK(
      volume.dim() == 4,
      "sliding window: expected a volume (C, D, H, W), got ",
      volume.sizes());
  for (int64_t w : o.window) {
    if (w < 1) {
      throw std::invalid_argument(
          "sliding window: window extents must be >= 1, got " +
          std::to_string(w));
    }
  }
  if (!(o.overlap >= 0 && o.overlap < 1)) {
    throw std::invalid_argument(
        "sliding window: overlap must be in [0, 1), got " +
        std::to_string(o.overlap));
  }
  if (o.batch_windows < 1) {
    throw std::invalid_argument(
        "sliding window: batch_windows must be >= 1, got " +
        std::to_string(o.batch_windows));
  }
  const int64_t D = volume.size(1), H = volume.size(2), W = volume.size(3);
  const int64_t wd = o.window[0], wh = o.window[1], ww = o.window[2];
  at::Tensor vol = volume;
  if (D < wd || H < wh || W < ww) {
    vol = at::constant_pad_nd(
        volume,
        {0,
         std::max<int64_t>(0, ww - W),
         0,
         std::max<int64_t>(0, wh - H),
         0,
         std::max<int64_t>(0, wd - D)});
  }
  const int64_t Dp = vol.size(1), Hp = vol.size(2), Wp = vol.size(3);
  const auto zs = window_starts(Dp, wd, o.overlap);
  const auto ys = window_starts(Hp, wh, o.overlap);
  const auto xs = window_starts(Wp, ww, o.overlap);
  const at::Tensor weight = window_weight(o);

  at::NoGradGuard no_grad;
  at::Tensor acc, wacc; // rows [lo, lo + acc.size(1)) of the padded output
  int64_t lo = 0;
  auto emit = [&](int64_t end) { // rows [lo, end) are final
    const int64_t stop = std::min(end, D);
    if (stop > lo) {
      at::Tensor avg =
          acc.narrow(1, 0, stop - lo) / wacc.narrow(1, 0, stop - lo);
      sink(lo, avg.narrow(2, 0, H).narrow(3, 0, W));
    }
    acc = acc.narrow(1, end - lo, acc.size(1) - (end - lo));
    wacc = wacc.narrow(1, end - lo, wacc.size(1) - (end - lo));
    lo = end;
  };

  std::vector<std::pair<int64_t, int64_t>> yx;
  for (int64_t y : ys) {
    for (int64_t x : xs) {
      yx.emplace_back(y, x);
    }
  }
  for (int64_t z : zs) {
    if (acc.defined() && z > lo) {
      emit(z);
    }
    for (size_t first = 0; first < yx.size();
         first += static_cast<size_t>(o.batch_windows)) {
      const size_t last =
          std::min(yx.size(), first + static_cast<size_t>(o.batch_windows));
      std::vector<at::Tensor> windows;
      for (size_t i = first; i < last; ++i) {
        windows.push_back(vol.narrow(1, z, wd)
                              .narrow(2, yx[i].first, wh)
                              .narrow(3, yx[i].second, ww));
      }
      const int64_t B = static_cast<int64_t>(windows.size());
      at::Tensor out = predict(at::stack(windows));
      CAKES_CHECK(
          out.dim() == 5 && out.size(0) == B && out.size(2) == wd &&
              out.size(3) == wh && out.size(4) == ww,
          "sliding window: predictor returned ",
          out.sizes(),
          " for ",
          B,
          " windows of ",
          wd,
          "x",
          wh,
          "x",
          ww,
          " (expected (",
          B,
          ", K, ",
          wd,
          ", ",
          wh,
          ", ",
          ww,
          "))");
      out = out.to(at::kFloat).to(at::kCPU);
      const int64_t K = out.size(1);
      if (!acc.defined()) {
        acc = at::zeros({K, 0, Hp, Wp}, out.options());
        wacc = at::zeros({1, 0, Hp, Wp}, out.options());
      }
      CAKES_CHECK(
          acc.size(0) == K,
          "sliding window: predictor changed its class count from ",
          acc.size(0),
          " to ",
          K);
      const int64_t need = z + wd - lo;
      if (acc.size(1) < need) {
        const int64_t more = need - acc.size(1);
        acc = at::cat({acc, at::zeros({K, more, Hp, Wp}, acc.options())}, 1);
        wacc = at::cat({wacc, at::zeros({1, more, Hp, Wp}, wacc.options())}, 1);
      }
      for (int64_t b = 0; b < B; ++b) {
        const auto [y, x] = yx[first + static_cast<size_t>(b)];
        acc.narrow(1, z - lo, wd)
            .narrow(2, y, wh)
            .narrow(3, x, ww)
            .add_(out[b] * weight);
        wacc.narrow(1, z - lo, wd)
            .narrow(2, y, wh)
            .narrow(3, x, ww)
            .add_(weight);
      }
    }
  }
  emit(lo + acc.size(1));
}

} // namespace

std::vector<int64_t>
window_starts(int64_t size, int64_t window, double overlap) {
  if (window >= size) {
    return {0};
  }
  const int64_t step = std::max<int64_t>(
      1,
      static_cast<int64_t>(
          std::floor(static_cast<double>(window) * (1.0 - overlap))));
  const int64_t span = size - window;
  const int64_t n = (span + step - 1) / step + 1;
  std::vector<int64_t> starts(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    starts[static_cast<size_t>(i)] = (i * span + (n - 1) / 2) / (n - 1);
  }
  return starts;
}

at::Tensor sliding_window_logits(
    const at::Tensor& volume,
    const WindowPredictor& predict,
    const SlidingWindowOptions& options) {
  at::Tensor out;
  run_slabs(volume, predict, options, [&](int64_t d0, const at::Tensor& avg) {
    if (!out.defined()) {
      out = at::empty(
          {avg.size(0), volume.size(1), volume.size(2), volume.size(3)},
          avg.options());
    }
    out.narrow(1, d0, avg.size(1)).copy_(avg);
  });
  return out;
}

at::Tensor sliding_window_labels(
    const at::Tensor& volume,
    const WindowPredictor& predict,
    const SlidingWindowOptions& options) {
  at::Tensor out = at::empty(
      {volume.size(1), volume.size(2), volume.size(3)},
      at::TensorOptions().dtype(at::kLong));
  run_slabs(volume, predict, options, [&](int64_t d0, const at::Tensor& avg) {
    out.narrow(0, d0, avg.size(1)).copy_(avg.argmax(/*dim=*/0));
  });
  return out;
}

} // namespace cakes::eval
