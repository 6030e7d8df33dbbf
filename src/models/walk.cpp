#include "walk.h"

#include "cakes/ops/shrunk_conv3d.h"

#include <torch/torch.h>

namespace cakes::models {

at::Tensor TensorRun::max_pool(
    const at::Tensor& x,
    std::vector<int64_t> kernel,
    std::vector<int64_t> stride,
    std::vector<int64_t> padding) {
  return torch::max_pool3d(x, kernel, stride, padding);
}

at::Tensor
TensorRun::upsample_like(const at::Tensor& x, const at::Tensor& like) {
  return torch::upsample_trilinear3d(
      x, like.sizes().slice(2), /*align_corners=*/false);
}

at::Tensor TensorRun::frame_classifier(
    const std::string&,
    torch::nn::DropoutImpl& dropout,
    torch::nn::LinearImpl& fc,
    const at::Tensor& x) {
  auto y = x.mean({3, 4}).transpose(1, 2); // (N, T, C)
  y = fc.forward(dropout.forward(y));
  return y.mean(1);
}

at::Tensor TensorRun::voxel_classifier(
    const std::string&,
    const at::Tensor& weight,
    const at::Tensor& bias,
    const at::Tensor& x,
    const std::vector<int64_t>& out_spatial) {
  auto y = ops::shrunk_conv3d(x, {weight}).add_(bias.view({1, -1, 1, 1, 1}));
  return torch::upsample_trilinear3d(y, out_spatial, /*align_corners=*/false);
}

CostRun::Value CostRun::max_pool(
    const Value& x,
    std::vector<int64_t> kernel,
    std::vector<int64_t> stride,
    std::vector<int64_t> padding) const {
  Value out = x;
  for (size_t a = 0; a < 3; ++a)
    out[2 + a] = (x[2 + a] + 2 * padding[a] - kernel[a]) / stride[a] + 1;
  return out;
}

CostRun::Value CostRun::upsample_like(const Value& x, const Value& like) const {
  Value out = like;
  out[0] = x[0];
  out[1] = x[1];
  return out;
}

CostRun::Value CostRun::frame_classifier(
    const std::string& name,
    const torch::nn::DropoutImpl&,
    const torch::nn::LinearImpl& fc,
    const Value& x) {
  LayerCost row;
  row.name = name;
  row.operation = "linear per frame, mean over frames";
  row.output_shape = {x[0], fc.options.out_features()};
  row.macs = x[0] * x[2] * fc.weight.numel();
  row.params = fc.weight.numel() + fc.bias.numel();
  report.layers.push_back(row);
  return row.output_shape;
}

CostRun::Value CostRun::voxel_classifier(
    const std::string& name,
    const at::Tensor& weight,
    const at::Tensor& bias,
    const Value& x,
    const std::vector<int64_t>& out_spatial) {
  LayerCost row;
  row.name = name;
  row.operation = "conv 1x1x1 + bias, trilinear x2";
  row.output_shape = {x[0], weight.size(0)};
  row.output_shape.insert(
      row.output_shape.end(), out_spatial.begin(), out_spatial.end());
  row.macs = x[0] * x[2] * x[3] * x[4] * weight.numel();
  row.params = weight.numel() + bias.numel();
  report.layers.push_back(row);
  return row.output_shape;
}

} // namespace cakes::models
