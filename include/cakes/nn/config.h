// Configuration of a CAKES layer: which sub-kernel each output channel uses.
//
// A configuration is an ordered list of (sub-kernel, channels) groups; output
// channels are the groups concatenated in that order (SPEC §2). It is plain
// data with no LibTorch dependency so that tools and cost models can use it
// cheaply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cakes {

// A sub-kernel over the (D, H, W) axes of an NCDHW tensor, e.g. 3x1x1. Each
// extent is 1 or an odd k (SPEC §1).
struct SubKernel {
  int64_t d = 1, h = 1, w = 1;

  // Parses "DxHxW" (e.g. "1x3x3"). Throws std::invalid_argument naming the text
  // when it is malformed or an extent is not a positive odd number.
  static SubKernel parse(const std::string& text);
  std::string str() const;
  int64_t volume() const {
    return d * h * w;
  }
  friend bool operator==(const SubKernel& a, const SubKernel& b) {
    return a.d == b.d && a.h == b.h && a.w == b.w;
  }
  friend bool operator!=(const SubKernel& a, const SubKernel& b) {
    return !(a == b);
  }
};

struct KernelGroup {
  SubKernel kernel;
  int64_t channels = 0; // may be 0: the group is present but empty
};

class Config {
public:
  Config() = default;
  explicit Config(std::vector<KernelGroup> groups);

  // Parses either the compact form "3x3x3:22,1x3x3:21,3x1x1:21" or a JSON
  // object {"3x3x3":22,"1x3x3":21,"3x1x1":21} (key order is group order).
  // Throws std::invalid_argument with a one-line message on malformed text,
  // negative counts or a sub-kernel listed twice.
  static Config parse(const std::string& text);
  // All channels in one sub-kernel, e.g. uniform({3,3,3}, 64).
  static Config uniform(SubKernel kernel, int64_t channels);

  std::string str() const;  // compact form
  std::string json() const; // JSON object, group order kept

  const std::vector<KernelGroup>& groups() const {
    return groups_;
  }
  int64_t out_channels() const;
  // Multiply-adds per output position and input channel: sum of c_i * vol_i.
  int64_t taps_times_channels() const;

  friend bool operator==(const Config& a, const Config& b);

private:
  std::vector<KernelGroup> groups_;
};

} // namespace cakes
