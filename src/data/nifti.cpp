#include "cakes/data/nifti.h"

#include <ATen/ATen.h>
#include <nifti2_io.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace cakes::data {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

// nifticlib reports through stderr when its debug level is above 0; a library
// must not print, so silence it once and report through exceptions instead.
void quiet_nifticlib() {
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

struct NimDeleter {
  void operator()(nifti_image* nim) const {
    nifti_image_free(nim);
  }
};
using NimPtr = std::unique_ptr<nifti_image, NimDeleter>;

template <typename T> void to_float(const void* src, float* dst, int64_t n) {
  const T* s = static_cast<const T*>(src);
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = static_cast<float>(s[i]);
  }
}

void convert(
    int datatype,
    const void* src,
    float* dst,
    int64_t n,
    const std::string& path) {
  switch (datatype) {
  case NIFTI_TYPE_UINT8:
    return to_float<uint8_t>(src, dst, n);
  case NIFTI_TYPE_INT8:
    return to_float<int8_t>(src, dst, n);
  case NIFTI_TYPE_INT16:
    return to_float<int16_t>(src, dst, n);
  case NIFTI_TYPE_UINT16:
    return to_float<uint16_t>(src, dst, n);
  case NIFTI_TYPE_INT32:
    return to_float<int32_t>(src, dst, n);
  case NIFTI_TYPE_UINT32:
    return to_float<uint32_t>(src, dst, n);
  case NIFTI_TYPE_INT64:
    return to_float<int64_t>(src, dst, n);
  case NIFTI_TYPE_UINT64:
    return to_float<uint64_t>(src, dst, n);
  case NIFTI_TYPE_FLOAT32:
    return to_float<float>(src, dst, n);
  case NIFTI_TYPE_FLOAT64:
    return to_float<double>(src, dst, n);
  default:
    fail(
        path,
        std::string("unsupported NIfTI datatype ") +
            nifti_datatype_string(datatype) +
            " (expected an integer or real scalar type)");
  }
}

void copy_matrix(const nifti_dmat44& m, std::array<double, 16>& out) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      out[r * 4 + c] = m.m[r][c];
    }
  }
}

} // namespace

Volume read_nifti(const std::string& path) {
  quiet_nifticlib();
  if (!std::filesystem::exists(path)) {
    fail(path, "no such file");
  }
  NimPtr nim(nifti_image_read(path.c_str(), /*read_data=*/0));
  if (!nim) {
    fail(path, "not a readable NIfTI-1/NIfTI-2 file (bad or missing header)");
  }
  if (nim->nvox <= 0 || nim->ndim < 1) {
    fail(path, "NIfTI header declares no voxels");
  }
  // nifti_image_load swaps bytes to native order and fails on a short read,
  // which is how a truncated .nii.gz shows up.
  if (nifti_image_load(nim.get()) != 0 || nim->data == nullptr) {
    fail(
        path,
        "cannot read the voxel data (" + std::to_string(nim->nvox) +
            " voxels of " + nifti_datatype_string(nim->datatype) +
            " expected; truncated or corrupt file?)");
  }

  const int64_t ndim = nim->dim[0];
  // Voxel data are stored with i fastest, so a C-order tensor over the
  // reversed dims views it without a copy; permute back to (i, j, k, ...).
  std::vector<int64_t> reversed;
  for (int64_t d = ndim; d >= 1; --d) {
    reversed.push_back(nim->dim[d]);
  }
  at::Tensor flat = at::empty(reversed, at::kFloat);
  convert(nim->datatype, nim->data, flat.data_ptr<float>(), nim->nvox, path);

  double slope = nim->scl_slope;
  double inter = nim->scl_inter;
  if (slope != 0.0 && std::isfinite(slope)) {
    if (!std::isfinite(inter)) {
      inter = 0.0;
    }
    if (slope != 1.0 || inter != 0.0) {
      flat.mul_(slope).add_(inter);
    }
  }

  std::vector<int64_t> order;
  for (int64_t d = ndim - 1; d >= 0; --d) {
    order.push_back(d);
  }

  Volume v;
  v.data = flat.permute(order).contiguous();
  v.path = path;
  v.sform_code = nim->sform_code;
  v.qform_code = nim->qform_code;
  // nifti_image does not record which header version it came from
  // (nifti_type says 1 for NIfTI-2 files too); ask the header reader.
  int version = 1;
  if (void* hdr = nifti_read_header(path.c_str(), &version, /*check=*/0)) {
    free(hdr);
  }
  v.nifti_version = version == 2 ? 2 : 1;
  for (int d = 0; d < 3; ++d) {
    const double p = nim->pixdim[d + 1];
    v.spacing[d] = (p > 0.0 && std::isfinite(p)) ? p : 1.0;
  }
  if (nim->sform_code > 0) {
    copy_matrix(nim->sto_xyz, v.affine);
  } else if (nim->qform_code > 0) {
    copy_matrix(nim->qto_xyz, v.affine);
  } else {
    v.affine = {
        v.spacing[0],
        0,
        0,
        0,
        0,
        v.spacing[1],
        0,
        0,
        0,
        0,
        v.spacing[2],
        0,
        0,
        0,
        0,
        1};
  }
  return v;
}

void write_nifti_labels(
    const std::string& path, const at::Tensor& labels, const Volume& like) {
  quiet_nifticlib();
  if (labels.dim() != 3) {
    fail(
        path,
        "label volume must be 3-D (nx, ny, nz), got " +
            std::to_string(labels.dim()) + "-D");
  }
  if (at::isFloatingType(labels.scalar_type())) {
    fail(path, "label volume must have an integer dtype");
  }
  if (labels.numel() > 0 && (labels.min().item<int64_t>() < 0 ||
                             labels.max().item<int64_t>() > INT16_MAX)) {
    fail(path, "labels must lie in [0, 32767]");
  }
  int64_t dims[8] = {
      3, labels.size(0), labels.size(1), labels.size(2), 1, 1, 1, 1};
  NimPtr nim(nifti_make_new_nim(dims, NIFTI_TYPE_INT16, /*data_fill=*/1));
  if (!nim) {
    fail(path, "nifticlib could not allocate the output image");
  }
  // i fastest on disk: reverse the axes so a C-order copy matches.
  at::Tensor disk = labels.cpu().to(at::kShort).permute({2, 1, 0}).contiguous();
  std::memcpy(
      nim->data, disk.data_ptr<int16_t>(), disk.numel() * sizeof(int16_t));

  nim->dx = nim->pixdim[1] = like.spacing[0];
  nim->dy = nim->pixdim[2] = like.spacing[1];
  nim->dz = nim->pixdim[3] = like.spacing[2];
  nifti_dmat44 a;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      a.m[r][c] = like.affine[r * 4 + c];
    }
  }
  // The sform carries the affine exactly; the qform is its closest rigid +
  // scaling form, for readers that look only there.
  nim->sform_code =
      like.sform_code > 0 ? like.sform_code : NIFTI_XFORM_SCANNER_ANAT;
  nim->sto_xyz = a;
  nim->sto_ijk = nifti_dmat44_inverse(a);
  nim->qform_code = like.qform_code > 0 ? like.qform_code : nim->sform_code;
  double dx, dy, dz;
  nifti_dmat44_to_quatern(
      a,
      &nim->quatern_b,
      &nim->quatern_c,
      &nim->quatern_d,
      &nim->qoffset_x,
      &nim->qoffset_y,
      &nim->qoffset_z,
      &dx,
      &dy,
      &dz,
      &nim->qfac);
  nim->qto_xyz = nifti_quatern_to_dmat44(
      nim->quatern_b,
      nim->quatern_c,
      nim->quatern_d,
      nim->qoffset_x,
      nim->qoffset_y,
      nim->qoffset_z,
      nim->dx,
      nim->dy,
      nim->dz,
      nim->qfac);
  nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
  nim->intent_code = NIFTI_INTENT_LABEL;
  nim->cal_min = 0;
  nim->cal_max = labels.numel() > 0
                     ? static_cast<double>(labels.max().item<int64_t>())
                     : 0;

  if (nifti_set_filenames(
          nim.get(),
          path.c_str(),
          /*check=*/0,
          /*set_byte_order=*/1) != 0) {
    fail(path, "not a valid NIfTI file name (use .nii or .nii.gz)");
  }
  nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
  std::error_code ec;
  std::filesystem::remove(path, ec);
  // nifti_image_write reports nothing back; confirm by reading the header.
  nifti_image_write(nim.get());
  NimPtr check(nifti_image_read(path.c_str(), /*read_data=*/0));
  if (!check || check->nvox != nim->nvox) {
    fail(path, "writing the label volume failed");
  }
}

} // namespace cakes::data
