// Shared by the fuzz targets: a scratch directory for parsers that read
// files, and LibTorch quiet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

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

} // namespace cakes::fuzz
