#include "cakes/util/zip_check.h"

#include "cakes/util/messages.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cakes::util {
namespace {

// Random access to the archive's bytes: a file (pread) or memory.
class Bytes {
public:
  virtual ~Bytes() = default;
  virtual uint64_t size() const = 0;
  // Copies [offset, offset + n) to dst; false when it is not all there.
  virtual bool read(uint64_t offset, size_t n, uint8_t* dst) const = 0;
};

class MemoryBytes : public Bytes {
public:
  MemoryBytes(const void* data, size_t size)
      : data_(static_cast<const uint8_t*>(data)), size_(size) {}
  uint64_t size() const override {
    return size_;
  }
  bool read(uint64_t offset, size_t n, uint8_t* dst) const override {
    if (offset > size_ || n > size_ - offset) {
      return false;
    }
    if (n > 0) { // dst may be null then (an empty vector's data())
      std::memcpy(dst, data_ + offset, n);
    }
    return true;
  }

private:
  const uint8_t* data_;
  uint64_t size_;
};

class FileBytes : public Bytes {
public:
  explicit FileBytes(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd_ < 0 || ::fstat(fd_, &st) != 0) {
      const int e = errno;
      if (fd_ >= 0) {
        ::close(fd_);
      }
      throw std::runtime_error(
          "cannot read '" + path + "': " + std::strerror(e));
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~FileBytes() override {
    ::close(fd_);
  }
  uint64_t size() const override {
    return size_;
  }
  bool read(uint64_t offset, size_t n, uint8_t* dst) const override {
    if (offset > size_ || n > size_ - offset) {
      return false;
    }
    while (n > 0) {
      const ssize_t got = ::pread(fd_, dst, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) {
        continue;
      }
      if (got <= 0) {
        return false;
      }
      dst += got;
      n -= static_cast<size_t>(got);
      offset += static_cast<uint64_t>(got);
    }
    return true;
  }

private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

uint16_t u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
         (uint32_t(p[3]) << 24);
}
uint64_t u64(const uint8_t* p) {
  return uint64_t(u32(p)) | (uint64_t(u32(p + 4)) << 32);
}

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kEnd64LocatorSig = 0x07064b50;
constexpr size_t kChunk = size_t(1) << 20;

class Checker {
public:
  Checker(const Bytes& bytes, std::string name)
      : b_(bytes), name_(std::move(name)) {}

  void run() {
    uint64_t entries = 0, cd_size = 0, cd_offset = 0;
    find_directory(entries, cd_size, cd_offset);
    uint64_t pos = cd_offset;
    const uint64_t cd_end = cd_offset + cd_size;
    for (uint64_t i = 0; i < entries; ++i) {
      pos = check_entry(pos, cd_end);
    }
  }

private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("'" + name_ + "' is damaged: " + what);
  }

  void read(uint64_t offset, size_t n, uint8_t* dst, const char* what) const {
    if (!b_.read(offset, n, dst)) {
      fail(std::string(what) + " lies outside the file (truncated?)");
    }
  }

  // The end-of-central-directory record (and its zip64 form when present).
  void
  find_directory(uint64_t& entries, uint64_t& cd_size, uint64_t& cd_offset) {
    const uint64_t size = b_.size();
    // The record is 22 bytes plus a comment of at most 65535.
    const size_t tail =
        static_cast<size_t>(std::min<uint64_t>(size, 22 + 65535));
    std::vector<uint8_t> t(tail);
    read(size - tail, tail, t.data(), "the end of the archive");
    size_t at = std::string::npos;
    for (size_t i = tail >= 22 ? tail - 22 + 1 : 0; i-- > 0;) {
      if (u32(&t[i]) == kEndSig) {
        at = i;
        break;
      }
    }
    if (at == std::string::npos) {
      throw std::runtime_error(
          "'" + name_ + "' is not a zip archive (no end-of-directory record)");
    }
    const uint8_t* e = &t[at];
    entries = u16(e + 10);
    cd_size = u32(e + 12);
    cd_offset = u32(e + 16);
    const uint64_t end_at = size - tail + at;
    if ((entries == 0xFFFF || cd_size == 0xFFFFFFFF ||
         cd_offset == 0xFFFFFFFF) &&
        end_at >= 20) {
      uint8_t loc[20];
      read(end_at - 20, 20, loc, "the zip64 locator");
      if (u32(loc) == kEnd64LocatorSig) {
        uint8_t e64[56];
        read(u64(loc + 8), 56, e64, "the zip64 end-of-directory record");
        if (u32(e64) != kEnd64Sig) {
          fail("bad zip64 end-of-directory record");
        }
        entries = u64(e64 + 32);
        cd_size = u64(e64 + 40);
        cd_offset = u64(e64 + 48);
      }
    }
    if (cd_offset > size || cd_size > size - cd_offset) {
      fail("its directory lies outside the file (truncated?)");
    }
    // Each directory entry takes at least 46 bytes.
    if (entries > cd_size / 46) {
      fail(
          "its directory declares " + std::to_string(entries) + " entries in " +
          std::to_string(cd_size) + " bytes");
    }
  }

  // Checks the entry whose directory record starts at `pos`; returns the
  // position of the next record.
  uint64_t check_entry(uint64_t pos, uint64_t cd_end) {
    uint8_t c[46];
    if (pos > cd_end || cd_end - pos < 46) {
      fail("its directory is shorter than it declares");
    }
    read(pos, 46, c, "a directory entry");
    if (u32(c) != kCentralSig) {
      fail("bad directory entry signature");
    }
    const uint16_t flags = u16(c + 8);
    const uint16_t method = u16(c + 10);
    const uint32_t crc = u32(c + 16);
    uint64_t csize = u32(c + 20), usize = u32(c + 24);
    const uint16_t name_len = u16(c + 28), extra_len = u16(c + 30),
                   comment_len = u16(c + 32);
    uint64_t local = u32(c + 42);
    const uint64_t next = pos + 46 + name_len + extra_len + comment_len;
    if (next > cd_end) {
      fail("a directory entry runs past the directory");
    }
    std::string name(name_len, '\0');
    read(
        pos + 46,
        name_len,
        reinterpret_cast<uint8_t*>(name.data()),
        "an entry name");
    name = one_line(name, 80);
    // Sizes or offset of 0xFFFFFFFF are in the zip64 extra field, in this
    // order, only those that overflowed.
    std::vector<uint8_t> extra(extra_len);
    read(pos + 46 + name_len, extra_len, extra.data(), "an extra field");
    for (size_t i = 0; i + 4 <= extra.size();) {
      const uint16_t id = u16(&extra[i]), len = u16(&extra[i + 2]);
      if (i + 4 + len > extra.size()) {
        break;
      }
      if (id == 0x0001) {
        const uint8_t* f = &extra[i + 4];
        size_t left = len;
        for (uint64_t* v : {&usize, &csize, &local}) {
          if (*v == 0xFFFFFFFF) {
            if (left < 8) {
              fail("entry '" + name + "' has a short zip64 field");
            }
            *v = u64(f);
            f += 8;
            left -= 8;
          }
        }
      }
      i += 4 + len;
    }
    if ((flags & 1) != 0) {
      fail("entry '" + name + "' is encrypted");
    }
    uint8_t l[30];
    read(local, 30, l, "a local header");
    if (u32(l) != kLocalSig) {
      fail("entry '" + name + "' has a bad local header");
    }
    const uint64_t data = local + 30 + u16(l + 26) + u16(l + 28);
    if (data > b_.size() || csize > b_.size() - data) {
      fail("the data of entry '" + name + "' run past the end (truncated?)");
    }
    uint32_t got = 0;
    if (method == 0) {
      if (csize != usize) {
        fail("stored entry '" + name + "' has two different sizes");
      }
      got = crc_stored(data, csize);
    } else if (method == 8) {
      got = crc_deflated(data, csize, usize, name);
    } else {
      fail(
          "entry '" + name + "' uses compression method " +
          std::to_string(method) + " (expected stored or deflate)");
    }
    if (got != crc) {
      fail("CRC-32 mismatch in entry '" + name + "' (its data were altered)");
    }
    return next;
  }

  uint32_t crc_stored(uint64_t offset, uint64_t n) {
    buf_.resize(kChunk);
    uLong crc = crc32(0, nullptr, 0);
    while (n > 0) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, kChunk));
      read(offset, k, buf_.data(), "entry data");
      crc = crc32(crc, buf_.data(), static_cast<uInt>(k));
      offset += k;
      n -= k;
    }
    return static_cast<uint32_t>(crc);
  }

  uint32_t crc_deflated(
      uint64_t offset, uint64_t n, uint64_t usize, const std::string& name) {
    z_stream z;
    std::memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
      fail("cannot initialise the inflater");
    }
    std::unique_ptr<z_stream, int (*)(z_streamp)> guard(&z, inflateEnd);
    buf_.resize(kChunk);
    std::vector<uint8_t> out(kChunk);
    uLong crc = crc32(0, nullptr, 0);
    uint64_t produced = 0;
    int r = Z_OK;
    while (r != Z_STREAM_END) {
      if (z.avail_in == 0) {
        if (n == 0) {
          fail("the deflate data of entry '" + name + "' end early");
        }
        const size_t k = static_cast<size_t>(std::min<uint64_t>(n, kChunk));
        read(offset, k, buf_.data(), "entry data");
        offset += k;
        n -= k;
        z.next_in = buf_.data();
        z.avail_in = static_cast<uInt>(k);
      }
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      r = inflate(&z, Z_NO_FLUSH);
      if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
        fail("corrupt deflate data in entry '" + name + "'");
      }
      const size_t k = out.size() - z.avail_out;
      produced += k;
      if (produced > usize) {
        fail("entry '" + name + "' inflates past its recorded size");
      }
      crc = crc32(crc, out.data(), static_cast<uInt>(k));
    }
    if (produced != usize) {
      fail("entry '" + name + "' inflates to another size than recorded");
    }
    return static_cast<uint32_t>(crc);
  }

  const Bytes& b_;
  std::string name_;
  std::vector<uint8_t> buf_;
};

} // namespace

void verify_zip_file(const std::string& path) {
  FileBytes bytes(path);
  Checker(bytes, path).run();
}

void verify_zip(const void* data, std::size_t size, const std::string& name) {
  MemoryBytes bytes(data, size);
  Checker(bytes, name).run();
}

} // namespace cakes::util
