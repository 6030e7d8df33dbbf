#include "test_helpers.h"

#include "cakes/data/jpeg.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace cakes::data::testing {

std::string run_command(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(
      popen(command.c_str(), "r"), pclose);
  if (!pipe) {
    throw std::runtime_error("cannot run: " + command);
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe.get())) > 0) {
    out.append(buf, n);
  }
  const int status = pclose(pipe.release());
  if (status != 0) {
    throw std::runtime_error(
        "command failed (" + std::to_string(status) + "): " + command);
  }
  return out;
}

std::vector<double> parse_numbers(const std::string& text) {
  std::istringstream in(text);
  std::vector<double> v;
  for (double x; in >> x;) {
    v.push_back(x);
  }
  return v;
}

ClipOptions identity_eval(int64_t segments, int64_t side) {
  ClipOptions c;
  c.training = false;
  c.num_segments = segments;
  c.scale_size = side;
  c.crop_size = side;
  c.mean = {0, 0, 0};
  c.std = {1, 1, 1};
  return c;
}

uint8_t synthetic_pixel(int64_t v, int64_t t, int64_t y, int64_t x, int64_t c) {
  // Stays within 0..255 for t < 16, x < 48, y < 32, v < 4: no wrap-around
  // edges for JPEG to smear.
  const int64_t value = 10 + 8 * t + x + y / 4 + 30 * c + 5 * v;
  return static_cast<uint8_t>(std::min<int64_t>(value, 255));
}

void write_frame_folders(
    const std::string& root,
    const std::vector<int64_t>& frames,
    const std::vector<int64_t>& labels,
    int64_t num_classes,
    int64_t height,
    int64_t width,
    int digits) {
  std::ofstream categories(root + "/category.txt");
  for (int64_t k = 0; k < num_classes; ++k) {
    categories << "class " << k << "\n";
  }
  std::ofstream list(root + "/list.txt");
  for (size_t v = 0; v < frames.size(); ++v) {
    const std::string folder = root + "/video" + std::to_string(v);
    fs::create_directories(folder);
    for (int64_t t = 0; t < frames[v]; ++t) {
      at::Tensor img = at::empty({height, width, 3}, at::kByte);
      uint8_t* p = img.data_ptr<uint8_t>();
      for (int64_t y = 0; y < height; ++y) {
        for (int64_t x = 0; x < width; ++x) {
          for (int64_t c = 0; c < 3; ++c) {
            *p++ = synthetic_pixel(v, t, y, x, c);
          }
        }
      }
      std::string number = std::to_string(t + 1);
      number.insert(0, digits - number.size(), '0');
      write_jpeg(folder + "/" + number + ".jpg", img, /*quality=*/98);
    }
    list << "video" << v << " " << frames[v] << " " << labels[v] << "\n";
  }
}

} // namespace cakes::data::testing
