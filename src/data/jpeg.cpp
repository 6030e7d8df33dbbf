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

// Huffman-coded JPEG spends at least one bit on every 8x8 block of the scan
// that covers the fewest blocks, and a component is subsampled at most 4x4:
// so a file of n bytes holds at most 8 * 64 * 16 * n pixels. Arithmetic
// coding has no such floor; kMaxJpegPixels bounds it.
constexpr int64_t kMaxPixelsPerByte = 8 * 64 * 16;

bool benign_warning(const std::string& message) {
  return message.find("extraneous bytes before marker") != std::string::npos;
}

// Whether the frame header (SOFn) says arithmetic coding (SOF9..SOF15);
// false when there is none, which the decoder then reports.
bool arithmetic_coded(const unsigned char* b, size_t n) {
  size_t i = 2; // after SOI
  while (i + 4 <= n && b[i] == 0xFF) {
    const unsigned char m = b[i + 1];
    if (m == 0xFF) { // fill byte
      ++i;
      continue;
    }
    if (m == 0xD9 || m == 0xDA) { // EOI or SOS before any SOF
      return false;
    }
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      return m >= 0xC9;
    }
    i += 2 + ((size_t(b[i + 2]) << 8) | b[i + 3]);
  }
  return false;
}

} // namespace

at::Tensor read_jpeg(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(path, "cannot open JPEG frame (missing or unreadable)");
  }
  std::vector<unsigned char> bytes(
      (std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_jpeg(bytes.data(), bytes.size(), path);
}

at::Tensor decode_jpeg(const void* data, size_t size, const std::string& name) {
  if (size == 0) {
    fail(name, "empty JPEG file");
  }
  const auto* bytes = static_cast<const unsigned char*>(data);
  TjHandle tj(tjInitDecompress());
  if (!tj) {
    fail(name, "cannot initialise the JPEG decoder");
  }
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(
          tj.get(),
          bytes,
          static_cast<unsigned long>(size),
          &width,
          &height,
          &subsamp,
          &colorspace) != 0) {
    fail(name, std::string("not a valid JPEG: ") + tjGetErrorStr2(tj.get()));
  }
  const int64_t pixels = int64_t(width) * height;
  if (width < 1 || height < 1 || pixels > kMaxJpegPixels ||
      (!arithmetic_coded(bytes, size) &&
       pixels > kMaxPixelsPerByte * int64_t(size))) {
    fail(
        name,
        "JPEG header declares " + std::to_string(width) + "x" +
            std::to_string(height) + " pixels, " +
            (pixels > kMaxJpegPixels
                 ? "more than the limit of " + std::to_string(kMaxJpegPixels)
                 : "more than " + std::to_string(size) +
                       " bytes of JPEG can encode (corrupt header)"));
  }
  at::Tensor out = at::empty({height, width, 3}, at::kByte);
  // A warning means pixels are missing or wrong (a truncated file decodes
  // with its end filled gray): stop at the first one instead of decoding a
  // declared size the data do not back. Extraneous bytes between segments
  // are the one warning that leaves every pixel intact.
  auto decode = [&](int flags) {
    return tjDecompress2(
        tj.get(),
        bytes,
        static_cast<unsigned long>(size),
        out.data_ptr<uint8_t>(),
        width,
        /*pitch=*/0,
        height,
        TJPF_RGB,
        TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS | flags);
  };
  if (decode(TJFLAG_STOPONWARNING) == 0) {
    return out;
  }
  const std::string why = tjGetErrorStr2(tj.get());
  if (tjGetErrorCode(tj.get()) == TJERR_WARNING && benign_warning(why) &&
      (decode(0) == 0 || benign_warning(tjGetErrorStr2(tj.get())))) {
    return out;
  }
  fail(name, "damaged JPEG: " + why);
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
