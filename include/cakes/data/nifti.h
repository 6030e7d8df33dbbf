// NIfTI-1 / NIfTI-2 volumes through nifticlib, with the metadata a
// segmentation pipeline must carry from input to prediction.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <string>

namespace cakes::data {

// A volume and the metadata needed to write a prediction aligned with it.
//
// `data` has the NIfTI voxel axes in file order, i first: shape (nx, ny, nz) or
// (nx, ny, nz, nt, ...) — the same shape nibabel's get_fdata() gives. It is
// float32 with scl_slope/scl_inter applied (a slope of 0 or non-finite means
// "no scaling", as in the standard and nibabel), in native byte order.
struct Volume {
  at::Tensor data;
  // Row-major 4x4 voxel (i, j, k, 1) -> world (x, y, z, 1) transform: the sform
  // when sform_code > 0, else the qform when qform_code > 0, else
  // diag(spacing).
  std::array<double, 16> affine{};
  std::array<double, 3> spacing{1.0, 1.0, 1.0}; // pixdim[1..3]
  int sform_code = 0;
  int qform_code = 0;
  int nifti_version = 1; // 1 or 2 as read from the file
  std::string path;
};

// Reads a .nii, .nii.gz or .hdr/.img pair, either endianness. Throws
// std::runtime_error naming the file when it is missing, not NIfTI, has an
// unsupported datatype (complex, RGB) or its data are short (e.g. a truncated
// .nii.gz).
Volume read_nifti(const std::string& path);

// Writes an integer label volume (shape (nx, ny, nz), any integer dtype with
// values in [0, 32767]) as NIfTI-1 int16 carrying `like`'s affine and spacing,
// so a prediction overlays its input in a viewer. ".gz" compresses. Throws
// std::runtime_error naming the file on failure.
void write_nifti_labels(
    const std::string& path, const at::Tensor& labels, const Volume& like);

} // namespace cakes::data
