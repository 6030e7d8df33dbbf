// Configuration of a CAKES layer: which sub-kernel each output channel uses.
//
// A configuration is an ordered list of (sub-kernel, channels) groups; output
// channels are the groups concatenated in that order (docs/CAKES.md §2). It is
// plain data with no LibTorch dependency so that tools and cost models can use
// it cheaply.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cakes {

// A sub-kernel over the (D, H, W) axes of an NCDHW tensor, e.g. 3x1x1. Each
// extent is 1 or an odd k (docs/CAKES.md §1).
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

// Sub-kernels joined by commas, e.g. "3x3x3,1x3x3,3x1x1".
std::string kernels_str(const std::vector<SubKernel>& kernels);

struct KernelGroup {
  SubKernel kernel;
  int64_t channels = 0; // may be 0: the group is present but empty
};

// Optionally a configuration also says where each channel goes after the
// normalisation (`output_index`, a permutation): channel i of the concatenated
// groups becomes output channel output_index[i]. A configuration derived from
// a search at a position that feeds a residual addition needs it
// (docs/SEARCH.md): each group's channels are contiguous in the layer, while
// the channels the search kept for each output index interleave. Empty (the
// usual case, and what the identity is stored as): output channel i is
// channel i.
class Config {
public:
  Config() = default;
  // Throws std::invalid_argument (one line) on a negative count, a sub-kernel
  // listed twice, an extent above 255, more than 2^24 channels in all, or an
  // output_index that is not a permutation of the channels. These bounds keep
  // every cost product in 64 bits.
  explicit Config(
      std::vector<KernelGroup> groups, std::vector<int64_t> output_index = {});

  // Parses either the compact form "3x3x3:22,1x3x3:21,3x1x1:21" or a JSON
  // object {"3x3x3":22,"1x3x3":21,"3x1x1":21} (key order is group order); an
  // output_index is written "3x3x3:1,1x3x3:2;output_index=2,0,1" or
  // {"3x3x3":1,"1x3x3":2,"output_index":[2,0,1]}. Throws
  // std::invalid_argument with a one-line message on malformed text, negative
  // or too large counts or a sub-kernel listed twice; the message quotes at
  // most the first 80 characters of the text.
  static Config parse(const std::string& text);
  // All channels in one sub-kernel, e.g. uniform({3,3,3}, 64).
  static Config uniform(SubKernel kernel, int64_t channels);

  std::string str() const;  // compact form
  std::string json() const; // JSON object, group order kept

  const std::vector<KernelGroup>& groups() const {
    return groups_;
  }
  const std::vector<int64_t>& output_index() const {
    return output_index_;
  }
  // Channels the convolution computes (and the BatchNorm normalises): the sum
  // of the groups' counts.
  int64_t conv_channels() const;
  // Channels the layer outputs: conv_channels() (output_index only reorders).
  int64_t out_channels() const;
  // Multiply-adds per output position and input channel: sum of c_i * vol_i.
  int64_t taps_times_channels() const;

  friend bool operator==(const Config& a, const Config& b);

private:
  std::vector<KernelGroup> groups_;
  std::vector<int64_t> output_index_;
};

} // namespace cakes
