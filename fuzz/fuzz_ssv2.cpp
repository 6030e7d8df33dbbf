// Something-Something V2 label files: something-something-v2-labels.json
// (class name -> index) and a train/validation list ([{"id", "template"}]),
// read by read_ssv2_list and then make_ssv2_dataset.
//
// The input holds both files: the labels JSON, a NUL byte, the list JSON.
// Without a NUL byte the whole input is the list, read against a fixed
// labels file, so that plain JSON mutations reach the list parser too.
#include "cakes/data/video_datasets.h"

#include "fuzz_support.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

namespace {
const char kLabels[] =
    "{\"Holding something\": \"0\", \"Putting something on a surface\": "
    "\"1\", \"Pushing something from left to right\": 2}";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  std::string labels;
  std::string list;
  if (nul) {
    const size_t n = size_t(nul - data);
    labels = cakes::fuzz::write_input(data, n, "labels.json");
    list = cakes::fuzz::write_input(nul + 1, size - n - 1, "list.json");
  } else {
    labels = cakes::fuzz::write_input(
        reinterpret_cast<const uint8_t*>(kLabels),
        sizeof(kLabels) - 1,
        "labels.json");
    list = cakes::fuzz::write_input(data, size, "list.json");
  }
  cakes::data::Ssv2Options o;
  o.list_file = list;
  o.labels_file = labels;
  try {
    const auto l = cakes::data::read_ssv2_list(o);
    if (l.ids.size() != l.labels.size())
      __builtin_trap(); // the reader's contract: one label per video
    for (const auto label : l.labels)
      if (label < 0 || size_t(label) >= l.class_names.size())
        __builtin_trap();
  } catch (const std::exception&) {
  }
  try {
    cakes::data::ClipOptions clip;
    cakes::data::make_ssv2_dataset(o, clip);
  } catch (const std::exception&) {
  }
  return 0;
}
