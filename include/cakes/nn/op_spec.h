// Which operation sits at each 3x3 position of a network, described as data.
//
// Networks never branch on operation names. They describe their 3x3 positions
// (name, channels, stride) as a list of Position and ask an OpFactory for a
// LayerPlan per position: the ordered convolution stages of that position, each
// stage a Config (docs/CAKES.md §2). One BatchNorm (+ ReLU) follows the last
// stage. So conv3d = [{3x3x3: C_out}], conv2d = [{1x3x3: C_out}], p3d =
// [{1x3x3: C_in}, {3x1x1: C_out}], cakes = [per-position Config]. New
// operations are added with register_op, without touching any network.
//
// Plain data, no LibTorch dependency: tools and cost models use it cheaply.
#pragma once

#include "cakes/nn/config.h"

#include <array>
#include <functional>
#include <string>
#include <vector>

namespace cakes {

// One position where the operation under study is placed.
struct Position {
  std::string name; // e.g. "layer1.0.conv2"
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::array<int64_t, 3> stride = {1, 1, 1};
  // Module path of the convolution that is the only reader of this position's
  // output (e.g. "layer1.0.conv3"), empty when the output also feeds a residual
  // addition or a skip. Only such positions may output more channels than
  // out_channels: the reader then reads them all (super-networks, docs/CAKES.md
  // §4).
  std::string reader;
};

// Convolution stages of one position, applied in order; stage i reads the
// output channels of stage i-1. The position's stride is applied by stage 0.
using LayerPlan = std::vector<Config>;

// What the user asks for: an operation name from the registry and, for
// operations that take them, one configuration per position (in order).
struct OpSpec {
  std::string op = "conv3d";
  std::vector<Config> configs;
  // Sub-kernels among which "cakes" splits the channels evenly when no
  // configuration is given (networks pass their natural candidate set).
  std::vector<SubKernel> candidates;
};

using OpFactory = std::function<LayerPlan(size_t index, const Position&)>;

// Builds a factory for `positions`, validating everything up front so that no
// network is half-built on bad input. Throws std::invalid_argument with one
// line naming the operation, or the position, on: an unknown operation, a
// configuration count that differs from the number of positions, or a
// configuration whose channels do not sum to the position's width.
OpFactory
make_op_factory(const OpSpec& spec, const std::vector<Position>& positions);

// A registered operation: given the spec and the positions, return a factory
// (validate here; throw std::invalid_argument).
using OpBuilder =
    std::function<OpFactory(const OpSpec&, const std::vector<Position>&)>;
void register_op(const std::string& name, OpBuilder builder);
std::vector<std::string> registered_ops();

// Even split of `channels` over `kernels`, remainder to the first groups.
Config even_split(const std::vector<SubKernel>& kernels, int64_t channels);

// The seven volumetric sub-kernels (docs/CAKES.md §1): 3D, three 2D, three 1D.
std::vector<SubKernel> volumetric_candidates();
// The video "1,2,3D" set: 3x3x3, 1x3x3, 3x1x1.
std::vector<SubKernel> video_candidates();

} // namespace cakes
