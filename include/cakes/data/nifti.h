// NIfTI-1 / NIfTI-2 volumes through nifticlib, with the metadata a
// segmentation pipeline must carry from input to prediction.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstddef>
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

// Reads a .nii, .nii.gz or .hdr/.img pair (either file may be gzipped),
// either endianness. Throws std::runtime_error naming the file when it is
// missing, not NIfTI (bad header size or magic), has an unsupported datatype
// (complex, RGB) or a bitpix that does not match it, non-positive
// dimensions, an invalid vox_offset (negative, fractional, non-finite, inside
// the header), a non-finite scl_slope or scl_inter (other than 0 or the
// (nan, nan) pair nibabel reads as "unset"), a non-finite qform or sform
// that is in use, data shorter than the header declares, or gzip data that
// are corrupt (CRC, length, deflate errors, early end). A declared size is
// checked against the file's real size (for gzip: the most it can expand
// to) before anything is allocated for it.
Volume read_nifti(const std::string& path);

// The same for a .nii file held in memory, gzipped or not (told by its
// first bytes); `name` stands for the file in error messages.
Volume parse_nifti(const void* data, size_t size, const std::string& name);

// Writes an integer label volume (shape (nx, ny, nz), any integer dtype with
// values in [0, 32767]) as NIfTI-1 int16 carrying `like`'s affine and spacing,
// so a prediction overlays its input in a viewer. ".gz" compresses. Throws
// std::runtime_error naming the file on failure.
void write_nifti_labels(
    const std::string& path, const at::Tensor& labels, const Volume& like);

} // namespace cakes::data
