#include "cakes/data/transforms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace cakes::data {
namespace {

int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

} // namespace

std::vector<int64_t> tsn_segment_indices(
    int64_t num_frames,
    int64_t num_segments,
    int64_t frames_per_segment,
    std::mt19937_64* rng) {
  if (num_frames < 1 || num_segments < 1 || frames_per_segment < 1) {
    throw std::invalid_argument(
        "tsn_segment_indices: need num_frames, num_segments and "
        "frames_per_segment >= 1, got " +
        std::to_string(num_frames) + ", " + std::to_string(num_segments) +
        ", " + std::to_string(frames_per_segment));
  }
  const int64_t n = num_frames, s = num_segments, len = frames_per_segment;
  const int64_t avail = n - len + 1; // valid start positions
  std::vector<int64_t> offsets(s);
  // Too short for one window per segment: repeat frames evenly (TSN returns
  // all zeros here, which throws the motion away).
  auto spread = [&] {
    for (int64_t i = 0; i < s; ++i) {
      offsets[i] = i * n / s;
    }
  };
  if (rng != nullptr) {
    const int64_t average = avail / s;
    if (average > 0) {
      for (int64_t i = 0; i < s; ++i) {
        offsets[i] = i * average + uniform_int(*rng, 0, average - 1);
      }
    } else if (n > s && avail > 0) {
      for (auto& o : offsets) {
        o = uniform_int(*rng, 0, avail - 1);
      }
      std::sort(offsets.begin(), offsets.end());
    } else {
      spread();
    }
  } else if (n > s + len - 1) {
    const double tick = static_cast<double>(avail) / static_cast<double>(s);
    for (int64_t i = 0; i < s; ++i) {
      offsets[i] =
          static_cast<int64_t>(tick / 2.0 + tick * static_cast<double>(i));
    }
  } else {
    spread();
  }
  std::vector<int64_t> out;
  out.reserve(s * len);
  for (int64_t o : offsets) {
    for (int64_t j = 0; j < len; ++j) {
      out.push_back(std::min(o + j, n - 1));
    }
  }
  return out;
}

at::Tensor frames_to_clip(const at::Tensor& frames) {
  TORCH_CHECK(
      frames.dim() == 4 && frames.size(3) == 3,
      "frames_to_clip: expected (T, H, W, 3) frames, got ",
      frames.sizes());
  return frames.permute({3, 0, 1, 2}).to(at::kFloat).div_(255.0).contiguous();
}

at::Tensor resize(const at::Tensor& clip, int64_t height, int64_t width) {
  TORCH_CHECK(
      clip.dim() >= 2 && height > 0 && width > 0,
      "resize: expected (..., H, W) and a positive size, got ",
      clip.sizes(),
      " -> ",
      height,
      "x",
      width);
  const int64_t h = clip.size(-2), w = clip.size(-1);
  if (h == height && w == width) {
    return clip;
  }
  std::vector<int64_t> out_shape = clip.sizes().vec();
  out_shape[out_shape.size() - 2] = height;
  out_shape[out_shape.size() - 1] = width;
  at::Tensor x = clip.reshape({1, -1, h, w}).to(at::kFloat);
  // Antialias when shrinking, as PIL does in the reference pipelines;
  // without it small moving objects alias away.
  at::Tensor y = (height < h || width < w)
                     ? at::_upsample_bilinear2d_aa(
                           x, {height, width}, /*align_corners=*/false)
                     : at::upsample_bilinear2d(
                           x, {height, width}, /*align_corners=*/false);
  return y.reshape(out_shape);
}

at::Tensor resize_short_side(const at::Tensor& clip, int64_t size) {
  const int64_t h = clip.size(-2), w = clip.size(-1);
  if (h <= w) {
    return resize(
        clip, size, std::max<int64_t>(1, std::llround(double(w) * size / h)));
  }
  return resize(
      clip, std::max<int64_t>(1, std::llround(double(h) * size / w)), size);
}

at::Tensor center_crop(const at::Tensor& clip, int64_t height, int64_t width) {
  const int64_t h = clip.size(-2), w = clip.size(-1);
  if (height > h || width > w) {
    throw std::invalid_argument(
        "center_crop: crop " + std::to_string(height) + "x" +
        std::to_string(width) + " larger than the clip " + std::to_string(h) +
        "x" + std::to_string(w));
  }
  const int64_t top = (h - height) / 2, left = (w - width) / 2;
  return clip.narrow(-2, top, height).narrow(-1, left, width);
}

at::Tensor multi_scale_crop(
    const at::Tensor& clip,
    const MultiScaleCropOptions& options,
    std::mt19937_64& rng) {
  const int64_t h = clip.size(-2), w = clip.size(-1);
  const int64_t base = std::min(h, w);
  std::vector<int64_t> sizes;
  for (double s : options.scales) {
    int64_t c = static_cast<int64_t>(base * s);
    // TSN snaps sizes within 3 pixels of the output size to it.
    sizes.push_back(std::abs(c - options.size) < 3 ? options.size : c);
  }
  std::vector<std::pair<int64_t, int64_t>> pairs; // (crop_h, crop_w)
  const int64_t ns = static_cast<int64_t>(sizes.size());
  for (int64_t i = 0; i < ns; ++i) {
    for (int64_t j = 0; j < ns; ++j) {
      if (std::abs(i - j) <= options.max_distort) {
        pairs.emplace_back(
            std::clamp<int64_t>(sizes[i], 1, h),
            std::clamp<int64_t>(sizes[j], 1, w));
      }
    }
  }
  TORCH_CHECK(!pairs.empty(), "multi_scale_crop: no scales given");
  const auto [ch, cw] = pairs[uniform_int(rng, 0, pairs.size() - 1)];
  const int64_t hs = (h - ch) / 4, ws = (w - cw) / 4;
  // (x, y) in quarter steps: corners, centre, then TSN's "more fixed crops".
  static const int kPositions[13][2] = {
      {0, 0},
      {4, 0},
      {0, 4},
      {4, 4},
      {2, 2},
      {0, 2},
      {4, 2},
      {2, 4},
      {2, 0},
      {1, 1},
      {3, 1},
      {1, 3},
      {3, 3}};
  const auto& p = kPositions[uniform_int(rng, 0, 12)];
  at::Tensor crop = clip.narrow(-2, p[1] * hs, ch).narrow(-1, p[0] * ws, cw);
  return resize(crop, options.size, options.size);
}

LabelSwaps ssv1_flip_swaps() {
  return {{86, 87}, {93, 94}, {166, 167}};
}

int64_t flipped_label(int64_t label, const LabelSwaps& swaps) {
  for (const auto& [a, b] : swaps) {
    if (label == a) {
      return b;
    }
    if (label == b) {
      return a;
    }
  }
  return label;
}

at::Tensor hflip(const at::Tensor& clip) {
  return clip.flip({-1});
}

at::Tensor normalize(
    const at::Tensor& clip,
    const std::vector<double>& mean,
    const std::vector<double>& std) {
  TORCH_CHECK(
      clip.dim() >= 1 && mean.size() == static_cast<size_t>(clip.size(0)) &&
          std.size() == mean.size(),
      "normalize: ",
      mean.size(),
      " means and ",
      std.size(),
      " stds for ",
      clip.size(0),
      " channels");
  std::vector<int64_t> shape(clip.dim(), 1);
  shape[0] = clip.size(0);
  at::Tensor m =
      at::tensor(mean, at::kDouble).to(clip.scalar_type()).view(shape);
  at::Tensor s =
      at::tensor(std, at::kDouble).to(clip.scalar_type()).view(shape);
  return (clip - m) / s;
}

at::Tensor window_normalize(const at::Tensor& volume, double lo, double hi) {
  if (!(hi > lo)) {
    throw std::invalid_argument(
        "window_normalize: need hi > lo, got [" + std::to_string(lo) + ", " +
        std::to_string(hi) + "]");
  }
  return (volume.clamp(lo, hi) - lo) / (hi - lo);
}

at::Tensor zscore_normalize(const at::Tensor& volume, bool nonzero_only) {
  at::Tensor out = at::zeros_like(volume);
  for (int64_t c = 0; c < volume.size(0); ++c) {
    at::Tensor x = volume[c];
    at::Tensor mask = nonzero_only ? (x != 0) : at::ones_like(x, at::kBool);
    at::Tensor vals = x.masked_select(mask).to(at::kDouble);
    if (vals.numel() == 0) {
      continue;
    }
    const double mu = vals.mean().item<double>();
    const double sd = vals.std(/*unbiased=*/false).item<double>();
    if (!(sd > 1e-12)) {
      continue;
    }
    out[c].copy_(at::where(mask, (x - mu) / sd, at::zeros_like(x)));
  }
  return out;
}

at::Tensor normalize_intensities(
    const at::Tensor& volume,
    const std::vector<std::string>& modalities,
    const IntensityOptions& options) {
  if (volume.dim() != 4 ||
      volume.size(0) != static_cast<int64_t>(modalities.size())) {
    throw std::invalid_argument(
        "normalize_intensities: " + std::to_string(modalities.size()) +
        " modalities for a volume of " +
        std::to_string(volume.dim() == 4 ? volume.size(0) : -1) + " channels");
  }
  if (!(options.ct_hi > options.ct_lo)) {
    throw std::invalid_argument(
        "CT window needs hi > lo, got [" + std::to_string(options.ct_lo) +
        ", " + std::to_string(options.ct_hi) + "]");
  }
  std::vector<at::Tensor> channels;
  for (int64_t c = 0; c < volume.size(0); ++c) {
    at::Tensor ch = volume.narrow(0, c, 1);
    const bool ct = modalities[c] == "CT";
    if (!options.zscore_set) {
      channels.push_back(
          ct ? window_normalize(ch, options.ct_lo, options.ct_hi)
             : zscore_normalize(ch, /*nonzero_only=*/true));
      continue;
    }
    if (ct) {
      ch = ch.clamp(options.ct_lo, options.ct_hi);
    }
    channels.push_back(
        zscore_normalize(ch, options.zscore == ZScoreRegion::Nonzero));
  }
  return at::cat(channels, 0).contiguous();
}

std::pair<at::Tensor, at::Tensor> random_patch(
    const at::Tensor& volume,
    const at::Tensor& labels,
    const PatchOptions& options,
    std::mt19937_64& rng) {
  TORCH_CHECK(
      volume.dim() == 4 && labels.dim() == 3 &&
          volume.sizes().slice(1).equals(labels.sizes()),
      "random_patch: expected volume (C, D, H, W) and labels (D, H, W), got ",
      volume.sizes(),
      " and ",
      labels.sizes());
  TORCH_CHECK(
      options.size.size() == 3, "random_patch: patch size needs 3 values");
  at::Tensor v = volume, l = labels;
  std::vector<int64_t> pad; // last dimension first
  bool need_pad = false;
  for (int d = 2; d >= 0; --d) {
    const int64_t missing =
        std::max<int64_t>(0, options.size[d] - labels.size(d));
    pad.push_back(missing / 2);
    pad.push_back(missing - missing / 2);
    need_pad = need_pad || missing > 0;
  }
  if (need_pad) {
    v = at::constant_pad_nd(v, pad, 0);
    l = at::constant_pad_nd(l, pad, 0);
  }
  int64_t start[3];
  bool placed = false;
  if (std::uniform_real_distribution<double>(0.0, 1.0)(rng) <
      options.foreground_fraction) {
    at::Tensor fg = at::nonzero(l > 0);
    if (fg.size(0) > 0) {
      at::Tensor centre = fg[uniform_int(rng, 0, fg.size(0) - 1)];
      for (int d = 0; d < 3; ++d) {
        start[d] = std::clamp<int64_t>(
            centre[d].item<int64_t>() - options.size[d] / 2,
            0,
            l.size(d) - options.size[d]);
      }
      placed = true;
    }
  }
  if (!placed) {
    for (int d = 0; d < 3; ++d) {
      start[d] = uniform_int(rng, 0, l.size(d) - options.size[d]);
    }
  }
  for (int d = 0; d < 3; ++d) {
    v = v.narrow(d + 1, start[d], options.size[d]);
    l = l.narrow(d, start[d], options.size[d]);
  }
  return {v.contiguous(), l.contiguous()};
}

std::pair<at::Tensor, at::Tensor> random_flip(
    const at::Tensor& volume,
    const at::Tensor& labels,
    double p,
    std::mt19937_64& rng) {
  at::Tensor v = volume, l = labels;
  std::bernoulli_distribution flip(p);
  for (int d = 0; d < 3; ++d) {
    if (flip(rng)) {
      v = v.flip({d + 1});
      l = l.flip({d});
    }
  }
  return {v, l};
}

} // namespace cakes::data
