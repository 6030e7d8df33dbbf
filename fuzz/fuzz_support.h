// Shared by the fuzz targets: a scratch directory for parsers that read
// files, and the CRCs of zip inputs made right again.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace cakes::fuzz {

// A directory of this process (under $TMPDIR, /tmp by default), made once.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tpl = std::string(base && *base ? base : "/tmp") +
                      "/cakes_fuzz_" + std::to_string(::getpid()) + "_XXXXXX";
    if (::mkdtemp(tpl.data()) == nullptr) {
      std::abort();
    }
    return tpl;
  }();
  return dir;
}

// Writes the input to `name` in the scratch directory; returns its path.
inline std::string
write_input(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

inline uint32_t u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
         (uint32_t(p[3]) << 24);
}
inline void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    p[i] = uint8_t(v >> (8 * i));
  }
}

// Rewrites the CRC of every stored entry (directory and local header) to
// match its data, where the records can be found within the buffer.
// Mutations almost never keep the CRCs right, and fuzz_zip covers the CRC
// check: the targets for zip-based formats call this so that damaged
// contents reach the readers behind the check.
inline void fix_crcs(std::vector<uint8_t>& b) {
  const size_t n = b.size();
  for (size_t i = 0; i + 46 <= n; ++i) {
    if (u32(&b[i]) != 0x02014b50 || b[i + 10] != 0 || b[i + 11] != 0) {
      continue;
    }
    const uint64_t size = u32(&b[i + 20]);
    const uint64_t local = u32(&b[i + 42]);
    if (local + 30 > n || u32(&b[local]) != 0x04034b50) {
      continue;
    }
    const uint64_t data = local + 30 + (b[local + 26] | (b[local + 27] << 8)) +
                          (b[local + 28] | (b[local + 29] << 8));
    if (data > n || size > n - data) {
      continue;
    }
    const uint32_t crc = uint32_t(crc32(0, &b[data], uInt(size)));
    put32(&b[i + 16], crc);
    put32(&b[local + 14], crc);
  }
}

} // namespace cakes::fuzz
