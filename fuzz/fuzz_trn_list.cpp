// TRN-style list files ("folder num_frames label" per line), video lists
// ("path label") and category files, read by the video datasets. Labels
// are class indices, or class names when the classes are named (a category
// file, or the class folders of a tree): both readings are fuzzed.
#include "cakes/data/video_datasets.h"

#include "fuzz_support.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string list = cakes::fuzz::write_input(data, size, "list.txt");
  try {
    cakes::data::FrameFolderOptions o;
    o.list_file = list;
    o.num_classes = 7;
    cakes::data::ClipOptions clip;
    cakes::data::FrameFolderDataset ds(o, clip);
    ds.describe();
  } catch (const std::exception&) {
  }
  try {
    cakes::data::VideoListOptions o;
    o.list_file = list;
    o.num_classes = 7;
    cakes::data::ClipOptions clip;
    cakes::data::VideoDataset ds(o, clip);
    ds.describe();
  } catch (const std::exception&) {
  }
  // The same list with named classes: labels may be names ("moving_left")
  // or names with spaces at the end of a line.
  const std::vector<std::string> names = {
      "moving left", "moving_right", "up", "Holding something"};
  try {
    cakes::data::FrameFolderOptions o;
    o.list_file = list;
    o.class_names = names;
    cakes::data::ClipOptions clip;
    cakes::data::FrameFolderDataset ds(o, clip);
    ds.describe();
  } catch (const std::exception&) {
  }
  try {
    cakes::data::VideoListOptions o;
    o.list_file = list;
    o.class_names = names;
    cakes::data::ClipOptions clip;
    cakes::data::VideoDataset ds(o, clip);
    ds.describe();
  } catch (const std::exception&) {
  }
  try {
    cakes::data::read_category_file(list);
  } catch (const std::exception&) {
  }
  return 0;
}
