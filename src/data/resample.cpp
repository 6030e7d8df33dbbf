#include "cakes/data/resample.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>

namespace cakes::data {
namespace {

// A new grid past this many voxels is almost certainly a spacing in the
// wrong unit (0.001 meant as mm); 2^30 float voxels are already 4 GiB.
constexpr double kMaxVoxels = 1073741824.0;

std::array<int64_t, 3> spatial_shape(const at::Tensor& t, int64_t first) {
  return {t.size(first), t.size(first + 1), t.size(first + 2)};
}

// Old voxel index under each new voxel's centre along one axis:
// floor((i' + 0.5) * n / n'), in integers so no rounding can shift it.
at::Tensor nearest_indices(int64_t n, int64_t n_new) {
  std::vector<int64_t> idx(n_new);
  for (int64_t i = 0; i < n_new; ++i) {
    idx[i] = std::min(n - 1, ((2 * i + 1) * n) / (2 * n_new));
  }
  return at::tensor(idx, at::kLong);
}

} // namespace

std::array<double, 3> affine_spacing(const std::array<double, 16>& affine) {
  std::array<double, 3> s{};
  for (int d = 0; d < 3; ++d) {
    s[d] = std::sqrt(
        affine[d] * affine[d] + affine[4 + d] * affine[4 + d] +
        affine[8 + d] * affine[8 + d]);
  }
  return s;
}

Grid resampled_grid(
    const std::array<int64_t, 3>& shape,
    const std::array<double, 16>& affine,
    const std::array<double, 3>& spacing) {
  const std::array<double, 3> current = affine_spacing(affine);
  Grid g;
  g.affine = affine;
  double voxels = 1.0;
  for (int d = 0; d < 3; ++d) {
    if (!(spacing[d] > 0) || !std::isfinite(spacing[d])) {
      throw std::invalid_argument(
          "spacing must be three positive numbers, got " +
          std::to_string(spacing[0]) + " " + std::to_string(spacing[1]) + " " +
          std::to_string(spacing[2]));
    }
    if (!(current[d] > 0) || !std::isfinite(current[d])) {
      throw std::invalid_argument(
          "the affine's axis " + std::to_string(d) +
          " has no length: cannot resample");
    }
    const double n = std::round(double(shape[d]) * current[d] / spacing[d]);
    voxels *= std::max(1.0, n);
    g.shape[d] = static_cast<int64_t>(std::max(1.0, std::min(n, 1e9)));
  }
  if (voxels > kMaxVoxels) {
    throw std::runtime_error(
        "resampling to spacing " + std::to_string(spacing[0]) + " " +
        std::to_string(spacing[1]) + " " + std::to_string(spacing[2]) +
        " gives " + std::to_string(g.shape[0]) + "x" +
        std::to_string(g.shape[1]) + "x" + std::to_string(g.shape[2]) +
        " voxels (over 2^30): is the spacing in the image's unit (mm)?");
  }
  // New voxel i' is old voxel r * i' + (r - 1) / 2 with r = n / n': scale
  // each column by r and move the origin to the first new centre.
  for (int d = 0; d < 3; ++d) {
    const double r = double(shape[d]) / double(g.shape[d]);
    const double shift = (r - 1.0) / 2.0;
    for (int row = 0; row < 3; ++row) {
      g.affine[4 * row + 3] += affine[4 * row + d] * shift;
      g.affine[4 * row + d] = affine[4 * row + d] * r;
    }
  }
  return g;
}

at::Tensor resample_trilinear(
    const at::Tensor& volume, const std::array<int64_t, 3>& shape) {
  TORCH_CHECK(
      volume.dim() == 4 && volume.is_floating_point(),
      "resample_trilinear: expected a float (C, D, H, W) volume, got ",
      volume.sizes());
  if (spatial_shape(volume, 1) == shape) {
    return volume;
  }
  // align_corners=false samples new centre i' at (i' + 0.5) * n / n' - 0.5:
  // the grid mapping of resampled_grid.
  return at::upsample_trilinear3d(
             volume.unsqueeze(0),
             {shape[0], shape[1], shape[2]},
             /*align_corners=*/false)
      .squeeze(0);
}

at::Tensor resample_nearest(
    const at::Tensor& labels, const std::array<int64_t, 3>& shape) {
  TORCH_CHECK(
      labels.dim() == 3,
      "resample_nearest: expected (D, H, W) labels, got ",
      labels.sizes());
  if (spatial_shape(labels, 0) == shape) {
    return labels;
  }
  at::Tensor out = labels;
  for (int d = 0; d < 3; ++d) {
    out = out.index_select(d, nearest_indices(labels.size(d), shape[d]));
  }
  return out.contiguous();
}

Volume resample_volume(
    const Volume& volume, const std::array<double, 3>& spacing, bool labels) {
  const at::Tensor& x = volume.data;
  if (x.dim() != 3 && x.dim() != 4) {
    throw std::runtime_error(
        volume.path + ": expected a 3-D or 4-D volume to resample, got " +
        std::to_string(x.dim()) + "-D");
  }
  const Grid g = resampled_grid(spatial_shape(x, 0), volume.affine, spacing);
  Volume out = volume;
  out.affine = g.affine;
  for (int d = 0; d < 3; ++d) {
    out.spacing[d] = volume.spacing[d] * double(x.size(d)) / double(g.shape[d]);
  }
  if (labels) {
    if (x.dim() != 3) {
      throw std::runtime_error(
          volume.path + ": a label volume must be 3-D, got 4-D");
    }
    out.data = resample_nearest(x, g.shape);
  } else if (x.dim() == 3) {
    out.data = resample_trilinear(x.unsqueeze(0), g.shape).squeeze(0);
  } else {
    out.data = resample_trilinear(x.permute({3, 0, 1, 2}), g.shape)
                   .permute({1, 2, 3, 0})
                   .contiguous();
  }
  return out;
}

void write_labels_on_grid_of(
    const std::string& path, const at::Tensor& labels, const Volume& original) {
  if (labels.dim() != 3 || original.data.dim() < 3) {
    throw std::runtime_error(
        path + ": expected 3-D labels for a 3-D or 4-D image, got " +
        std::to_string(labels.dim()) + "-D labels");
  }
  write_nifti_labels(
      path,
      resample_nearest(labels, spatial_shape(original.data, 0)),
      original);
}

} // namespace cakes::data
