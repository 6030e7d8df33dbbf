#include "cakes/data/jpeg.h"

#include <ATen/ops/empty.h>
#include <turbojpeg.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <vector>

namespace cakes::data {
namespace {

struct TjDeleter {
  void operator()(void* h) const {
    tjDestroy(h);
  }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

} // namespace

at::Tensor read_jpeg(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(path, "cannot open JPEG frame (missing or unreadable)");
  }
  std::vector<unsigned char> bytes(
      (std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) {
    fail(path, "empty JPEG file");
  }
  TjHandle tj(tjInitDecompress());
  if (!tj) {
    fail(path, "cannot initialise the JPEG decoder");
  }
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(
          tj.get(),
          bytes.data(),
          bytes.size(),
          &width,
          &height,
          &subsamp,
          &colorspace) != 0) {
    fail(path, std::string("not a valid JPEG: ") + tjGetErrorStr2(tj.get()));
  }
  at::Tensor out = at::empty({height, width, 3}, at::kByte);
  if (tjDecompress2(
          tj.get(),
          bytes.data(),
          bytes.size(),
          out.data_ptr<uint8_t>(),
          width,
          /*pitch=*/0,
          height,
          TJPF_RGB,
          TJFLAG_ACCURATEDCT) != 0 &&
      tjGetErrorCode(tj.get()) == TJERR_FATAL) {
    // Warnings (e.g. premature end of data in an otherwise usable file) are
    // tolerated; a fatal error is not.
    fail(path, std::string("JPEG decode failed: ") + tjGetErrorStr2(tj.get()));
  }
  return out;
}

void write_jpeg(const std::string& path, const at::Tensor& rgb, int quality) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != at::kByte) {
    fail(path, "write_jpeg expects a uint8 (H, W, 3) tensor");
  }
  at::Tensor src = rgb.contiguous();
  TjHandle tj(tjInitCompress());
  if (!tj) {
    fail(path, "cannot initialise the JPEG encoder");
  }
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(
          tj.get(),
          src.data_ptr<uint8_t>(),
          static_cast<int>(src.size(1)),
          /*pitch=*/0,
          static_cast<int>(src.size(0)),
          TJPF_RGB,
          &buf,
          &size,
          TJSAMP_444,
          quality,
          TJFLAG_ACCURATEDCT) != 0) {
    tjFree(buf);
    fail(path, std::string("JPEG encode failed: ") + tjGetErrorStr2(tj.get()));
  }
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(buf, tjFree);
  std::ofstream out(path, std::ios::binary);
  out.write(
      reinterpret_cast<const char*>(buf), static_cast<std::streamsize>(size));
  if (!out) {
    fail(path, "cannot write JPEG file");
  }
}

} // namespace cakes::data
