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

namespace {

// Reads the list both as a frame-folder list and as a video list.
void read_lists(const std::string& list, const cakes::data::ClassSource& c) {
  try {
    cakes::data::FrameFolderOptions o;
    static_cast<cakes::data::ClassSource&>(o) = c;
    o.list_file = list;
    cakes::data::FrameFolderDataset ds(o, cakes::data::ClipOptions{});
    ds.describe();
  } catch (const std::exception&) {
  }
  try {
    cakes::data::VideoListOptions o;
    static_cast<cakes::data::ClassSource&>(o) = c;
    o.list_file = list;
    cakes::data::VideoDataset ds(o, cakes::data::ClipOptions{});
    ds.describe();
  } catch (const std::exception&) {
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string list = cakes::fuzz::write_input(data, size, "list.txt");
  cakes::data::ClassSource counted;
  counted.num_classes = 7;
  read_lists(list, counted);
  // Labels may also be class names ("moving_right", or a name with spaces
  // at the end of a line) when the classes are named.
  cakes::data::ClassSource named;
  named.class_names = {
      "moving left", "moving_right", "up", "Holding something"};
  read_lists(list, named);
  try {
    cakes::data::read_category_file(list);
  } catch (const std::exception&) {
  }
  return 0;
}
