// NIfTI-1/2 headers and voxel data, gzipped or not (the parser tells them by
// their first bytes): every input must give a Volume or a std::exception.
#include "cakes/data/nifti.h"

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <exception>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cakes::data::Volume v = cakes::data::parse_nifti(data, size, "fuzz.nii");
    // The shape the header declared is the shape of the data.
    if (v.data.numel() < 1) {
      __builtin_trap();
    }
  } catch (const std::exception&) {
  }
  return 0;
}
