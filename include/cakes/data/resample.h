// Resampling volumes to a voxel spacing (nnU-Net's target spacing) and back:
// images trilinearly, labels by nearest voxel centre, the affine kept exact so
// a prediction made on the new grid lands where it belongs on the old one.
#pragma once

#include "cakes/data/nifti.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>

namespace cakes::data {

// Voxel sizes along i, j, k: the lengths of the affine's first three columns
// (what the affine says, which is pixdim unless an sform scales otherwise).
std::array<double, 3> affine_spacing(const std::array<double, 16>& affine);

// A voxel grid: its shape along (i, j, k) and its row-major voxel -> world
// affine.
struct Grid {
  std::array<int64_t, 3> shape{};
  std::array<double, 16> affine{};
};

// The grid that resampling a volume of `shape` and `affine` to voxel size
// `spacing` (world units, mm in NIfTI files) produces:
//   shape'[d] = max(1, round(shape[d] * current[d] / spacing[d])),
// and the two grids cover the same box (their outer voxel faces coincide, as
// with align_corners=false), so new voxel i' sits at old voxel coordinate
// (i' + 0.5) * shape[d] / shape'[d] - 0.5. The realised voxel size is
// current[d] * shape[d] / shape'[d], within half a voxel of `spacing` over the
// volume. Throws std::invalid_argument when a spacing is not positive and
// finite, or the affine has a zero-length axis, and std::runtime_error when
// the new grid would exceed 2^30 voxels (a spacing in the wrong unit).
Grid resampled_grid(
    const std::array<int64_t, 3>& shape,
    const std::array<double, 16>& affine,
    const std::array<double, 3>& spacing);

// (C, D, H, W) float -> (C, shape) by trilinear interpolation between voxel
// centres on the grid mapping above (no antialiasing when shrinking, as in
// nnU-Net). Returns the input when the shape is unchanged.
at::Tensor resample_trilinear(
    const at::Tensor& volume, const std::array<int64_t, 3>& shape);

// (D, H, W) labels of any dtype -> shape: each new voxel takes the value of
// the old voxel whose centre is nearest its own (ties towards higher index);
// values are copied, never blended. Returns the input when the shape is
// unchanged.
at::Tensor
resample_nearest(const at::Tensor& labels, const std::array<int64_t, 3>& shape);

// `volume` resampled to voxel size `spacing`: data (3-D, or 4-D with channels
// on the 4th axis) trilinearly or, with `labels`, by nearest voxel; affine and
// spacing (pixdim) updated for the new grid; codes and path kept.
Volume resample_volume(
    const Volume& volume, const std::array<double, 3>& spacing, bool labels);

// Writes `labels` (D, H, W), predicted on any grid that covers the same box
// as `original` (its own grid or a resampled_grid of it), as a label NIfTI on
// `original`'s grid with `original`'s affine: resampled by nearest voxel when
// the shapes differ. Throws std::runtime_error naming `path` on failure.
void write_labels_on_grid_of(
    const std::string& path, const at::Tensor& labels, const Volume& original);

} // namespace cakes::data
