// The tiny 3D task the trainer and distributed tests train: the class is the
// sign of the mean of a (1, 4, 4, 4) tensor (shifted by +-0.4 by index parity,
// so it is learnable in a few steps), and a CAKES layer (OpLayer) + pooling +
// linear
// network for it.
#pragma once

#include "cakes/data/dataset.h"
#include "cakes/models/model.h"
#include "cakes/nn/op_layer.h"

#include <torch/torch.h>

#include <random>
#include <vector>

namespace cakes::test {

class SignDataset : public data::Dataset {
public:
  explicit SignDataset(int64_t n) : n_(n) {}
  int64_t size() const override {
    return n_;
  }
  data::Sample get(int64_t index, std::mt19937_64& rng) const override {
    std::normal_distribution<float> normal(0, 1);
    std::vector<float> v(64);
    for (auto& x : v)
      x = normal(rng);
    const float shift = index % 2 ? 0.4f : -0.4f;
    auto input = (torch::tensor(v) + shift).reshape({1, 4, 4, 4});
    return {
        input,
        torch::scalar_tensor(input.mean().item<float>() > 0, torch::kLong)};
  }

private:
  int64_t n_;
};

// Dropout > 0 makes training depend on LibTorch's RNG (what resume must
// restore); 0 keeps two replicas' steps comparable.
struct TinyNetImpl : torch::nn::Module {
  // `norm`: the layer's normalisation (null: BatchNorm).
  explicit TinyNetImpl(double dropout = 0, nn::NormPtr norm = nullptr) {
    conv = register_module(
        "conv",
        nn::OpLayer(
            nn::OpLayerOptions(1, Config::parse("3x3x3:2,1x3x3:2,3x1x1:2"))
                .norm(norm)));
    drop = register_module("drop", torch::nn::Dropout(dropout));
    fc = register_module("fc", torch::nn::Linear(6, 2));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv->forward(x);
    h = torch::adaptive_avg_pool3d(h, {1, 1, 1}).flatten(1);
    return fc->forward(drop->forward(h));
  }
  nn::OpLayer conv{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(TinyNet);

// The model handle the Trainer takes, named `network` in checkpoints.
inline models::Model tiny_model(TinyNet net, const std::string& network) {
  models::NetworkSpec spec;
  spec.network = network;
  spec.num_classes = 2;
  return models::Model::wrap(net, spec);
}

} // namespace cakes::test
