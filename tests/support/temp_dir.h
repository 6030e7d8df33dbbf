// A fresh, empty folder for one test, removed when the test ends. Shared by
// every test area (data, train, dist, cli, models).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace cakes::test {

class TempDir {
public:
  // <build>/test_tmp/<name>_<pid>: inside the build tree, so a failed run
  // leaves its files where they can be inspected, and unique per process, so
  // `ctest -j` runs of different tests never share one.
  explicit TempDir(const std::string& name)
      : path_((std::filesystem::path(CAKES_BINARY_DIR) / "test_tmp" /
               (name + "_" + std::to_string(::getpid())))
                  .string()) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const {
    return path_;
  }
  std::string operator/(const std::string& leaf) const {
    return path_ + "/" + leaf;
  }

private:
  std::string path_;
};

} // namespace cakes::test
