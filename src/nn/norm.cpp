#include "cakes/nn/norm.h"

#include <torch/torch.h>

#include <stdexcept>

namespace cakes::nn {
namespace {

class BatchNorm : public Norm {
public:
  at::Tensor forward(const at::Tensor& x, NormTensors& t) const override {
    if (t.training) {
      // torch::nn::BatchNorm3d's own check, as one of ours.
      int64_t values = x.size(0);
      for (int64_t d = 2; d < x.dim(); ++d)
        values *= x.size(d);
      if (values == 1)
        throw std::invalid_argument(
            "batch norm: expected more than 1 value per channel in training "
            "mode, got input shape " +
            c10::str(x.sizes()));
    }
    return torch::batch_norm(
        x,
        t.weight,
        t.bias,
        t.running_mean,
        t.running_var,
        t.training,
        t.momentum,
        t.eps,
        /*cudnn_enabled=*/false);
  }
  std::string name() const override {
    return "batch_norm";
  }
};

} // namespace

NormPtr batch_norm() {
  static const NormPtr norm = std::make_shared<BatchNorm>();
  return norm;
}

} // namespace cakes::nn
