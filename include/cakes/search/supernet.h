// Super-networks (docs/CAKES.md §4): one of our networks built with the
// "super" operation, which this file registers. Every position holds every
// candidate at full width, N * C_out channels in candidate order (candidate n
// owns channels [n*C_out, (n+1)*C_out)), with one BatchNorm over them all.
// Where the position has a reader (Position::reader) the reader convolution
// reads all N * C_out. Where its output feeds a residual addition (the
// ResNet-18/34 second convolutions, the encoder-decoder's stem and second
// convolutions), which needs C_out channels, the candidates' BatchNorm
// outputs are summed per output index ("summed" layers): channel n*C_out + j
// goes to output j. Every position is searched.
//
// What the super-network computes beyond the layers' plain forward — the
// summing and the channel subsets of select() — is a ChannelView, the
// nn::LayerExtension this area installs on the searched layers and their
// readers. The layers' parameters are plain OpLayer parameters.
#pragma once

#include "cakes/models/model.h"
#include "cakes/nn/op_layer.h"

#include <memory>
#include <string>
#include <vector>

namespace cakes::search {

// The computation of one super-network layer: candidates summed per output
// index (summed_width > 0), and channel subsets when set.
class ChannelView : public nn::LayerExtension {
public:
  explicit ChannelView(int64_t summed_width) : summed_width_(summed_width) {}
  at::Tensor forward(
      nn::OpLayerImpl& layer,
      const at::Tensor& x,
      const at::Tensor& residual) override;
  int64_t out_channels(const nn::OpLayerImpl& layer) const override;

  // Only these channels of the last stage (ascending int64 indices into its
  // concatenated output; undefined = all): their weight rows and BatchNorm
  // entries (whose running statistics move in training), so gradients reach
  // only them. Without summing the output has one channel per index; summed,
  // each goes to its output index and outputs nothing reaches are zero.
  at::Tensor outputs;
  // Only these input channels (columns of stage 0's weights).
  at::Tensor inputs;

private:
  int64_t summed_width_ = 0;
};

// One searched position of a super-network.
struct SearchLayer {
  size_t position = 0; // index into SuperNet::positions
  std::string name;    // module path of the position
  int64_t width = 0;   // C_out: channels kept per layer
  nn::OpLayer layer{nullptr};
  nn::OpLayer reader{nullptr}; // empty for a summed layer
  // The candidates are summed per output index (no reader; the output feeds
  // a residual addition). Kept channels: exactly one per index j, i.e. one
  // of {n*C_out + j}.
  bool summed = false;
  std::shared_ptr<ChannelView> view;        // on `layer`
  std::shared_ptr<ChannelView> reader_view; // on `reader`
};

struct SuperNet {
  models::Model model; // model.spec.op is {"super", {}, candidates}
  std::vector<SubKernel> candidates;
  std::vector<Position> positions; // all positions, configuration order
  std::vector<SearchLayer> layers; // one per position, in that order
};

// Builds the super-network of `spec.network` (spec.op is replaced). Throws
// std::invalid_argument on an unknown network or an empty candidate list.
SuperNet build_supernet(
    models::NetworkSpec spec,
    std::vector<SubKernel> candidates,
    const models::BuildOptions& options = {});

// Restricts every searched layer to `kept[l]` (global channel indices of layer
// l, any order; a layer with a reader outputs them in ascending order, a
// summed layer sends each to its output index) and its reader to the same
// input columns; `clear_selection` restores the full super-network. In eval
// mode a selection computes the derived network with inherited weights.
void select(SuperNet& net, const std::vector<std::vector<int64_t>>& kept);
void clear_selection(SuperNet& net);

// Restores the full super-network when it goes out of scope.
class SelectionGuard {
public:
  explicit SelectionGuard(SuperNet& net) : net_(net) {}
  ~SelectionGuard() {
    clear_selection(net_);
  }
  SelectionGuard(const SelectionGuard&) = delete;
  SelectionGuard& operator=(const SelectionGuard&) = delete;

private:
  SuperNet& net_;
};

} // namespace cakes::search
