// A volumetric residual encoder-decoder for segmentation (docs/CAKES.md §6),
// with the operation at every 3x3x3 position given by an OpSpec (default: cakes
// over the seven volumetric sub-kernels, channels split evenly).
//
// Layout (w = base_width): stem (stride 2) -> enc0 (w, 1/2) -> enc1 (2w, 1/4)
// -> enc2 (4w, 1/8) -> enc3 (8w, 1/16), each a residual block of two operation
// positions whose first carries the (2,2,2) stride; decoder levels 2, 1, 0:
// trilinear x2 up-sampling, 1x1x1 projection + BN, add the encoder's skip,
// residual block; 1x1x1 classifier with bias; trilinear x2 to the input size.
// Input (N, C_in, D, H, W) with D, H, W multiples of 16, else
// std::invalid_argument; output (N, num_classes, D, H, W) logits per voxel.
#pragma once

#include "cakes/models/network.h"
#include "cakes/nn/op_layer.h"
#include "cakes/nn/op_spec.h"

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

namespace cakes::models {

struct ResEncoderDecoderOptions {
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(int64_t, num_classes) = 2;
  TORCH_ARG(int64_t, base_width) = 16;
  TORCH_ARG(OpSpec, op) = OpSpec{"cakes", {}, volumetric_candidates()};
  // The norm of every layer (nn/norm.h); null: batch_norm().
  TORCH_ARG(nn::NormPtr, norm) = nullptr;
};

std::vector<Position>
res_encoder_decoder_positions(int64_t in_channels, int64_t base_width);

class ResEncoderDecoderImpl
    : public torch::nn::Cloneable<ResEncoderDecoderImpl>,
      public Network {
public:
  explicit ResEncoderDecoderImpl(ResEncoderDecoderOptions options);
  void reset() override;
  at::Tensor forward(const at::Tensor& x) override;
  CostReport cost(const std::vector<int64_t>& input_sizes) const override;
  const std::vector<std::pair<std::string, nn::OpLayer>>&
  layers() const override {
    return layers_;
  }

  ResEncoderDecoderOptions options;

private:
  struct Block {
    nn::OpLayer conv1{nullptr}, conv2{nullptr}, shortcut{nullptr};
  };
  template <class Self, class Run>
  static typename Run::Value
  walk(Self& self, Run& run, const typename Run::Value& x);
  template <class Run, class B>
  static typename Run::Value walk_block(
      B& block,
      Run& run,
      const std::string& name,
      const typename Run::Value& x);
  void check_input(const std::vector<int64_t>& sizes) const;

  nn::OpLayer stem_{nullptr};
  std::vector<Block> enc_, dec_; // dec_[l] for levels 0..2
  std::vector<nn::OpLayer> up_;  // up_[l]: 1x1x1 projection to level l
  at::Tensor cls_weight_, cls_bias_;
  std::vector<std::pair<std::string, nn::OpLayer>> layers_;
};
TORCH_MODULE(ResEncoderDecoder);

} // namespace cakes::models
