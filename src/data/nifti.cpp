// NIfTI-1/-2 reading and label writing: the header checked field by field
// (docs/RELIABILITY.md), bounded and CRC-checked gzip, either endianness,
// .nii/.nii.gz/.hdr+.img. Over 500 lines: one format, kept in one file.
#include "cakes/data/nifti.h"

#include <ATen/ATen.h>
#include <nifti2_io.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

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

static_assert(sizeof(nifti_1_header) == 348, "NIfTI-1 header layout");
static_assert(sizeof(nifti_2_header) == 540, "NIfTI-2 header layout");

// Deflate expands at most 1032:1, so a gzip file of n bytes cannot hold more
// than this many: a header declaring more is corrupt, and is refused before
// anything is decompressed or allocated for it.
uint64_t max_inflated_size(uint64_t compressed) {
  constexpr uint64_t kRatio = 1032;
  return compressed > std::numeric_limits<uint64_t>::max() / kRatio
             ? std::numeric_limits<uint64_t>::max()
             : compressed * kRatio + 1024;
}

bool is_gzip(const uint8_t* data, size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

// The bytes of a file, decompressed on demand when they are gzip (one or more
// members, as gzip and nibabel write them). Every byte is checked: a
// corrupt deflate stream, a CRC or length mismatch and a stream that ends
// early are errors naming the file, not silently short or wrong data.
class Source {
public:
  Source(const uint8_t* data, size_t size, std::string name)
      : data_(data), size_(size), name_(std::move(name)),
        gzip_(is_gzip(data, size)) {
    if (gzip_) {
      std::memset(&z_, 0, sizeof(z_));
      if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) {
        fail(name_, "cannot initialise the gzip decoder");
      }
      z_.next_in = const_cast<Bytef*>(data_);
      z_.avail_in = static_cast<uInt>(std::min<size_t>(size_, kMaxChunk));
      fed_ = z_.avail_in;
    }
  }
  ~Source() {
    if (gzip_) {
      inflateEnd(&z_);
    }
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  bool compressed() const {
    return gzip_;
  }
  // The most bytes this source can yield.
  uint64_t max_size() const {
    return gzip_ ? max_inflated_size(size_) : size_;
  }

  // Makes `bytes()` hold at least `n` bytes when the source has them;
  // returns how many it holds. Grows with the data actually decoded, so an
  // absurd `n` costs nothing before the data run out.
  size_t fill(size_t n) {
    if (!gzip_) {
      return size_;
    }
    while (out_.size() < n && !ended_) {
      const size_t old = out_.size();
      const size_t want = std::min(n, std::max(old * 2, old + kMinGrow));
      out_.resize(want);
      const size_t got = inflate_into(out_.data() + old, want - old);
      out_.resize(old + got);
    }
    return out_.size();
  }
  const uint8_t* bytes() const {
    return gzip_ ? out_.data() : data_;
  }

  // Decodes (and discards) the rest of a gzip stream: only its end carries
  // the CRC and length that tell whether the data read so far are intact.
  void check_to_end() {
    std::vector<uint8_t> scratch(gzip_ ? kMinGrow : 0);
    while (gzip_ && !ended_) {
      inflate_into(scratch.data(), scratch.size());
    }
  }

private:
  static constexpr size_t kMinGrow = size_t(1) << 20;
  static constexpr size_t kMaxChunk = size_t(1) << 30; // zlib counts in uInt

  size_t inflate_into(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n && !ended_) {
      if (z_.avail_in == 0 && fed_ < size_) {
        z_.next_in = const_cast<Bytef*>(data_ + fed_);
        z_.avail_in = static_cast<uInt>(std::min(size_ - fed_, kMaxChunk));
        fed_ += z_.avail_in;
      }
      z_.next_out = dst + done;
      z_.avail_out = static_cast<uInt>(std::min(n - done, kMaxChunk));
      const uInt before = z_.avail_out;
      const int r = inflate(&z_, Z_NO_FLUSH);
      done += before - z_.avail_out;
      if (r == Z_STREAM_END) {
        // Another member may follow (concatenated gzip files are one file);
        // anything else after a complete member is ignored, as gzip does.
        const size_t rest = z_.avail_in + (size_ - fed_);
        const uint8_t* next = data_ + (size_ - rest);
        if (rest >= 2 && is_gzip(next, rest)) {
          inflateReset(&z_);
        } else {
          ended_ = true;
        }
      } else if (r == Z_BUF_ERROR && z_.avail_in == 0 && fed_ == size_) {
        fail(name_, "gzip data end early (truncated file?)");
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        fail(
            name_,
            std::string("corrupt gzip data (") +
                (z_.msg != nullptr ? z_.msg
                                   : "zlib error " + std::to_string(r)) +
                ")");
      }
    }
    return done;
  }

  const uint8_t* data_;
  size_t size_;
  std::string name_;
  bool gzip_;
  z_stream z_;
  size_t fed_ = 0;
  bool ended_ = false;
  std::vector<uint8_t> out_;
};

// What the reader needs from a NIfTI-1 or NIfTI-2 header, in native order.
struct Header {
  int version = 1;
  bool swapped = false;
  bool single_file = true;
  int64_t header_size = 348;
  int64_t ndim = 0;
  int64_t dim[8] = {};
  double pixdim[8] = {};
  int datatype = 0;
  int bitpix = 0;
  double vox_offset = 0;
  double scl_slope = 0, scl_inter = 0;
  int qform_code = 0, sform_code = 0;
  double quatern[3] = {}, qoffset[3] = {};
  double srow[3][4] = {};
};

int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Non-printing bytes as \xNN, so a corrupt magic stays one short line.
std::string printable(const char* s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// The fields of a NIfTI-1 or NIfTI-2 header (same names, wider types in
// NIfTI-2), after byte swapping.
template <typename N> void take_fields(const N& n, Header& h) {
  h.single_file = n.magic[1] == '+';
  h.ndim = n.dim[0];
  for (int i = 0; i < 8; ++i) {
    h.dim[i] = n.dim[i];
    h.pixdim[i] = n.pixdim[i];
  }
  h.datatype = n.datatype;
  h.bitpix = n.bitpix;
  // A float in NIfTI-1, an int64 in NIfTI-2: check_header checks either.
  h.vox_offset = static_cast<double>(n.vox_offset);
  h.scl_slope = n.scl_slope;
  h.scl_inter = n.scl_inter;
  h.qform_code = n.qform_code;
  h.sform_code = n.sform_code;
  const double q[6] = {
      n.quatern_b,
      n.quatern_c,
      n.quatern_d,
      n.qoffset_x,
      n.qoffset_y,
      n.qoffset_z};
  for (int i = 0; i < 3; ++i) {
    h.quatern[i] = q[i];
    h.qoffset[i] = q[3 + i];
  }
  for (int i = 0; i < 4; ++i) {
    h.srow[0][i] = n.srow_x[i];
    h.srow[1][i] = n.srow_y[i];
    h.srow[2][i] = n.srow_z[i];
  }
}

// Reads the header at the start of `src` (at least 348 bytes there).
Header parse_header(Source& src, const std::string& name) {
  if (src.fill(540) < 348) {
    fail(name, "too short for a NIfTI header (348 bytes at least)");
  }
  const uint8_t* b = src.bytes();
  const int32_t sizeof_hdr = load_i32(b);
  const int32_t swapped_size = static_cast<int32_t>(
      __builtin_bswap32(static_cast<uint32_t>(sizeof_hdr)));
  Header h;
  if (sizeof_hdr == 348 || swapped_size == 348) {
    h.version = 1;
    h.swapped = sizeof_hdr != 348;
  } else if (sizeof_hdr == 540 || swapped_size == 540) {
    h.version = 2;
    h.swapped = sizeof_hdr != 540;
    h.header_size = 540;
    if (src.fill(540) < 540) {
      fail(name, "too short for a NIfTI-2 header (540 bytes)");
    }
    b = src.bytes();
  } else {
    fail(
        name,
        "not a NIfTI-1/NIfTI-2 file (header size field is " +
            std::to_string(sizeof_hdr) + ", expected 348 or 540)");
  }
  if (h.version == 1) {
    nifti_1_header n;
    std::memcpy(&n, b, sizeof(n));
    if (h.swapped) {
      nifti_swap_as_nifti1(&n);
    }
    if (std::memcmp(n.magic, "n+1", 4) != 0 &&
        std::memcmp(n.magic, "ni1", 4) != 0) {
      fail(
          name,
          "bad magic \"" + printable(n.magic, 4) +
              "\" (a NIfTI-1 header has \"n+1\" or \"ni1\")");
    }
    take_fields(n, h);
  } else {
    nifti_2_header n;
    std::memcpy(&n, b, sizeof(n));
    if (h.swapped) {
      nifti_swap_as_nifti2(&n);
    }
    // The bytes after "n+2\0" are the PNG-style signature that shows a
    // file mangled by a text-mode transfer.
    if (std::memcmp(n.magic, "n+2\0\r\n\032\n", 8) != 0 &&
        std::memcmp(n.magic, "ni2\0\r\n\032\n", 8) != 0) {
      fail(
          name,
          "bad magic \"" + printable(n.magic, 8) +
              "\" (a NIfTI-2 header has \"n+2\\x00\\r\\n\\x1a\\n\")");
    }
    take_fields(n, h);
  }
  return h;
}

// Bytes per voxel of the scalar types the reader converts; 0 for the others.
int scalar_bytes(int datatype) {
  switch (datatype) {
  case NIFTI_TYPE_UINT8:
  case NIFTI_TYPE_INT8:
    return 1;
  case NIFTI_TYPE_INT16:
  case NIFTI_TYPE_UINT16:
    return 2;
  case NIFTI_TYPE_INT32:
  case NIFTI_TYPE_UINT32:
  case NIFTI_TYPE_FLOAT32:
    return 4;
  case NIFTI_TYPE_INT64:
  case NIFTI_TYPE_UINT64:
  case NIFTI_TYPE_FLOAT64:
    return 8;
  default:
    return 0;
  }
}

// The checks nifticlib leaves out: a header that passes them describes data
// the reader can take at face value.
struct Layout {
  int64_t nvox = 0;
  int64_t nbytes = 0;
  int64_t offset = 0; // of the voxel data in the data file
  int voxel_bytes = 0;
};

Layout check_header(const Header& h, const std::string& name) {
  Layout l;
  l.voxel_bytes = scalar_bytes(h.datatype);
  if (l.voxel_bytes == 0) {
    fail(
        name,
        std::string("unsupported NIfTI datatype ") +
            nifti_datatype_string(h.datatype) + " (code " +
            std::to_string(h.datatype) +
            "; expected an integer or real scalar type)");
  }
  if (h.bitpix != 8 * l.voxel_bytes) {
    fail(
        name,
        "bitpix " + std::to_string(h.bitpix) + " does not match datatype " +
            nifti_datatype_string(h.datatype) + " (" +
            std::to_string(8 * l.voxel_bytes) + " bits)");
  }
  if (h.ndim < 1 || h.ndim > 7) {
    fail(
        name,
        "dim[0] = " + std::to_string(h.ndim) +
            ": the number of dimensions must be 1 to 7");
  }
  l.nvox = 1;
  for (int64_t d = 1; d <= h.ndim; ++d) {
    if (h.dim[d] < 1) {
      fail(
          name,
          "dim[" + std::to_string(d) + "] = " + std::to_string(h.dim[d]) +
              " is not a positive size");
    }
    if (__builtin_mul_overflow(l.nvox, h.dim[d], &l.nvox)) {
      fail(name, "declared dimensions overflow a 64-bit voxel count");
    }
  }
  if (__builtin_mul_overflow(l.nvox, int64_t(l.voxel_bytes), &l.nbytes)) {
    fail(name, "declared data size overflows 64 bits");
  }
  // vox_offset is a float in NIfTI-1: it must still name a whole byte.
  const double off = h.vox_offset;
  if (!std::isfinite(off) || off < 0 || off != std::floor(off) ||
      off > 9.0e15) {
    fail(name, "invalid vox_offset " + number(off));
  }
  l.offset = static_cast<int64_t>(off);
  if (h.single_file) {
    // 0 is read as "right after the header", as nifticlib and nibabel do;
    // anything else inside the header would read the header as voxels.
    if (l.offset == 0) {
      l.offset = h.header_size;
    } else if (l.offset < h.header_size) {
      fail(
          name,
          "vox_offset " + std::to_string(l.offset) +
              " lies inside the header (" + std::to_string(h.header_size) +
              " bytes)");
    }
  }
  // A slope of 0 means "no scaling" (the standard), and so does the pair
  // (nan, nan), nibabel's "unset". Any other non-finite value is corruption
  // that would turn every voxel into nan or inf.
  const bool unset =
      h.scl_slope == 0 || (std::isnan(h.scl_slope) && std::isnan(h.scl_inter));
  if (!unset && !std::isfinite(h.scl_slope)) {
    fail(name, "invalid scl_slope " + number(h.scl_slope));
  }
  if (!unset && !std::isfinite(h.scl_inter)) {
    fail(
        name,
        "invalid scl_inter " + number(h.scl_inter) + " (scl_slope " +
            number(h.scl_slope) + ")");
  }
  if (h.qform_code > 0) {
    for (int i = 0; i < 3; ++i) {
      if (!std::isfinite(h.quatern[i]) || !std::isfinite(h.qoffset[i])) {
        fail(name, "qform (qform_code > 0) has a non-finite parameter");
      }
    }
  }
  if (h.sform_code > 0) {
    for (const auto& row : h.srow) {
      for (double v : row) {
        if (!std::isfinite(v)) {
          fail(name, "sform (sform_code > 0) has a non-finite entry");
        }
      }
    }
  }
  return l;
}

template <typename T>
void to_float(const uint8_t* src, float* dst, int64_t n, bool swapped) {
  for (int64_t i = 0; i < n; ++i) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, src + i * int64_t(sizeof(T)), sizeof(T));
    if (swapped) {
      std::reverse(raw, raw + sizeof(T));
    }
    T v;
    std::memcpy(&v, raw, sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

void convert(
    int datatype, const uint8_t* src, float* dst, int64_t n, bool swapped) {
  switch (datatype) {
  case NIFTI_TYPE_UINT8:
    return to_float<uint8_t>(src, dst, n, swapped);
  case NIFTI_TYPE_INT8:
    return to_float<int8_t>(src, dst, n, swapped);
  case NIFTI_TYPE_INT16:
    return to_float<int16_t>(src, dst, n, swapped);
  case NIFTI_TYPE_UINT16:
    return to_float<uint16_t>(src, dst, n, swapped);
  case NIFTI_TYPE_INT32:
    return to_float<int32_t>(src, dst, n, swapped);
  case NIFTI_TYPE_UINT32:
    return to_float<uint32_t>(src, dst, n, swapped);
  case NIFTI_TYPE_INT64:
    return to_float<int64_t>(src, dst, n, swapped);
  case NIFTI_TYPE_UINT64:
    return to_float<uint64_t>(src, dst, n, swapped);
  case NIFTI_TYPE_FLOAT32:
    return to_float<float>(src, dst, n, swapped);
  case NIFTI_TYPE_FLOAT64:
    return to_float<double>(src, dst, n, swapped);
  default:
    throw std::logic_error("convert: datatype not checked");
  }
}

void copy_matrix(const nifti_dmat44& m, std::array<double, 16>& out) {
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      out[r * 4 + c] = m.m[r][c];
    }
  }
}

// Builds the volume from a checked header and the file that holds its voxels
// (the same one for .nii, the .img of a pair).
Volume make_volume(
    const Header& h,
    Source& data,
    const std::string& data_name,
    const std::string& name) {
  const Layout l = check_header(h, name);
  const uint64_t end = uint64_t(l.offset) + uint64_t(l.nbytes);
  if (end > data.max_size()) {
    fail(
        data_name,
        (data.compressed() ? "" : "truncated or corrupt: ") +
            std::string("header declares ") + std::to_string(l.nbytes) +
            " bytes of voxel data at offset " + std::to_string(l.offset) +
            (data.compressed()
                 ? ", more than the " + std::to_string(data.max_size()) +
                       " bytes this gzip file can hold"
                 : ", the file has " + std::to_string(data.max_size())));
  }
  const size_t have = data.fill(static_cast<size_t>(end));
  if (have < end) {
    fail(
        data_name,
        "truncated: header declares " + std::to_string(l.nbytes) +
            " bytes of voxel data at offset " + std::to_string(l.offset) +
            ", the data hold " +
            std::to_string(have > uint64_t(l.offset) ? have - l.offset : 0));
  }
  data.check_to_end();

  // Voxel data are stored with i fastest, so a C-order tensor over the
  // reversed dims views it without a copy; permute back to (i, j, k, ...).
  std::vector<int64_t> reversed;
  for (int64_t d = h.ndim; d >= 1; --d) {
    reversed.push_back(h.dim[d]);
  }
  at::Tensor flat = at::empty(reversed, at::kFloat);
  convert(
      h.datatype,
      data.bytes() + l.offset,
      flat.data_ptr<float>(),
      l.nvox,
      h.swapped);
  const bool unset = h.scl_slope == 0 || std::isnan(h.scl_slope);
  if (!unset && (h.scl_slope != 1.0 || h.scl_inter != 0.0)) {
    flat.mul_(h.scl_slope).add_(h.scl_inter);
  }
  std::vector<int64_t> order;
  for (int64_t d = h.ndim - 1; d >= 0; --d) {
    order.push_back(d);
  }

  Volume v;
  v.data = flat.permute(order).contiguous();
  v.path = name;
  v.nifti_version = h.version;
  // Spacings of 0 or non-finite mean "unknown": 1, as nifticlib has it.
  double pix[4] = {1, 1, 1, 1};
  for (int d = 1; d <= 3; ++d) {
    const double p = h.pixdim[d];
    pix[d] = (d <= h.ndim && p != 0.0 && std::isfinite(p)) ? p : 1.0;
  }
  for (int d = 0; d < 3; ++d) {
    v.spacing[d] = pix[d + 1] > 0.0 ? pix[d + 1] : 1.0;
  }
  v.qform_code = std::max(0, h.qform_code);
  v.sform_code = std::max(0, h.sform_code);
  if (h.sform_code > 0) {
    for (int r = 0; r < 3; ++r) {
      for (int c = 0; c < 4; ++c) {
        v.affine[r * 4 + c] = h.srow[r][c];
      }
    }
    v.affine[15] = 1;
  } else if (h.qform_code > 0) {
    const double qfac = h.pixdim[0] < 0.0 ? -1.0 : 1.0;
    copy_matrix(
        nifti_quatern_to_dmat44(
            h.quatern[0],
            h.quatern[1],
            h.quatern[2],
            h.qoffset[0],
            h.qoffset[1],
            h.qoffset[2],
            pix[1],
            pix[2],
            pix[3],
            qfac),
        v.affine);
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

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    fail(path, std::filesystem::exists(path) ? "cannot open" : "no such file");
  }
  const std::streamoff size = in.tellg();
  if (size < 0) {
    fail(path, "cannot determine the file size");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    fail(path, "read error");
  }
  return bytes;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

Volume parse_nifti(const void* data, size_t size, const std::string& name) {
  Source src(static_cast<const uint8_t*>(data), size, name);
  const Header h = parse_header(src, name);
  if (!h.single_file) {
    fail(
        name,
        "header of a .hdr/.img pair (magic ni1/ni2): the voxels are in the "
        ".img file");
  }
  return make_volume(h, src, name, name);
}

Volume read_nifti(const std::string& path) {
  // A pair is named by either of its files; the header is the .hdr, and
  // either file may be gzipped independently of the other.
  std::string hdr_path = path;
  std::vector<std::string> img_paths;
  for (const char* gz : {".gz", ""}) {
    const std::string hdr = std::string(".hdr") + gz,
                      img = std::string(".img") + gz;
    if (ends_with(path, hdr)) {
      const std::string stem = path.substr(0, path.size() - hdr.size());
      img_paths = {stem + img, stem + (*gz ? ".img" : ".img.gz")};
      break;
    }
    if (ends_with(path, img)) {
      const std::string stem = path.substr(0, path.size() - img.size());
      img_paths = {path};
      hdr_path = stem + hdr;
      if (!std::filesystem::exists(hdr_path)) {
        hdr_path = stem + (*gz ? ".hdr" : ".hdr.gz");
      }
      break;
    }
  }
  const std::vector<uint8_t> bytes = read_file(hdr_path);
  Source src(bytes.data(), bytes.size(), hdr_path);
  const Header h = parse_header(src, hdr_path);
  if (h.single_file) {
    if (!img_paths.empty()) {
      fail(hdr_path, "magic says single file (n+1/n+2) but it is a .hdr");
    }
    Volume v = make_volume(h, src, hdr_path, hdr_path);
    v.path = path;
    return v;
  }
  if (img_paths.empty()) {
    fail(
        path, "magic says .hdr/.img pair (ni1/ni2) but the file is not a .hdr");
  }
  src.check_to_end();
  std::string img_path = img_paths.front();
  if (!std::filesystem::exists(img_path) && img_paths.size() > 1 &&
      std::filesystem::exists(img_paths[1])) {
    img_path = img_paths[1];
  }
  const std::vector<uint8_t> img = read_file(img_path);
  Source data(img.data(), img.size(), img_path);
  Volume v = make_volume(h, data, img_path, hdr_path);
  v.path = path;
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
