// The zip integrity check every checkpoint goes through before LibTorch
// reads it (util/zip_check.h): directory, zip64 records, local headers,
// stored and deflated entries, CRCs. Seeds are the checkpoints of
// fuzz_checkpoint.
#include "cakes/util/zip_check.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cakes::util::verify_zip(data, size, "fuzz.pt");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) {
      __builtin_trap();
    }
  }
  return 0;
}
