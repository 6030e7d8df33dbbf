// Reading what a command wrote: a whole file, its non-empty lines. Shared by
// the command-line tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace cakes::test {

// The file's contents; empty when it cannot be read.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// The non-empty lines of `text`.
inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> r;
  std::istringstream s(text);
  std::string l;
  while (std::getline(s, l))
    if (!l.empty())
      r.push_back(l);
  return r;
}

} // namespace cakes::test
