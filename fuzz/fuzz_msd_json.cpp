// The Medical Segmentation Decathlon's dataset.json, read as MsdDataset
// reads it: from a task folder.
#include "cakes/data/msd_dataset.h"

#include "fuzz_support.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cakes::fuzz::write_input(data, size, "dataset.json");
  // Either split, by the input's length: one parse per input.
  for (const char* split : {size % 2 ? "test" : "training"}) {
    try {
      cakes::data::MsdOptions o;
      o.root = cakes::fuzz::scratch_dir();
      o.split = split;
      cakes::data::MsdDataset ds(o);
      ds.describe();
    } catch (const std::exception& e) {
      if (std::string(e.what()).find('\n') != std::string::npos) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
