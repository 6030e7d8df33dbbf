// The two ways a network's one description (its walk) is run: on tensors
// (forward) and on sizes (the cost report). A network writes its structure
// once as
//
//   template <class Self, class Run>
//   static typename Run::Value walk(Self& self, Run& run, Value x);
//
// calling only the steps below, and forward / cost are walk(TensorRun) /
// walk(CostRun). Steps that carry no MACs (pooling, up-sampling, additions)
// only move sizes in CostRun.
#pragma once

#include "cakes/nn/cost.h"
#include "cakes/nn/op_layer.h"

#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <string>
#include <vector>

namespace cakes::models {

struct TensorRun {
  using Value = at::Tensor;
  using Layer = nn::OpLayerImpl;

  static std::vector<int64_t> sizes(const Value& x) {
    return x.sizes().vec();
  }
  Value layer(const std::string&, Layer& l, const Value& x) {
    return l.forward(x);
  }
  // The layer with `residual()` added before its ReLU. CostRun lists the
  // layer before whatever `residual` runs, so that rows keep the modules'
  // order; here the residual must exist first.
  Value layer_with_residual(
      const std::string&,
      Layer& l,
      const Value& x,
      const std::function<Value()>& residual) {
    const Value r = residual();
    return l.forward(x, r);
  }
  Value max_pool(
      const Value& x,
      std::vector<int64_t> kernel,
      std::vector<int64_t> stride,
      std::vector<int64_t> padding);
  // Trilinear up-sampling of x to the spatial size of `like`.
  Value upsample_like(const Value& x, const Value& like);
  // Spatial mean per frame, dropout, the linear classifier on each frame,
  // mean of the logits over frames (TSN consensus): (N, C, T, H, W) -> (N, K).
  Value frame_classifier(
      const std::string& name,
      torch::nn::DropoutImpl& dropout,
      torch::nn::LinearImpl& fc,
      const Value& x);
  // 1x1x1 convolution with bias, then trilinear up-sampling to `out_spatial`.
  Value voxel_classifier(
      const std::string& name,
      const at::Tensor& weight,
      const at::Tensor& bias,
      const Value& x,
      const std::vector<int64_t>& out_spatial);
};

struct CostRun {
  using Value = std::vector<int64_t>;
  using Layer = const nn::OpLayerImpl;

  CostReport report;

  static const Value& sizes(const Value& x) {
    return x;
  }
  Value layer(const std::string& name, Layer& l, const Value& x) {
    report.layers.push_back(l.cost(name, x));
    return report.layers.back().output_shape;
  }
  Value layer_with_residual(
      const std::string& name,
      Layer& l,
      const Value& x,
      const std::function<Value()>& residual) {
    Value out = layer(name, l, x);
    residual();
    return out;
  }
  Value max_pool(
      const Value& x,
      std::vector<int64_t> kernel,
      std::vector<int64_t> stride,
      std::vector<int64_t> padding) const;
  Value upsample_like(const Value& x, const Value& like) const;
  Value frame_classifier(
      const std::string& name,
      const torch::nn::DropoutImpl& dropout,
      const torch::nn::LinearImpl& fc,
      const Value& x);
  Value voxel_classifier(
      const std::string& name,
      const at::Tensor& weight,
      const at::Tensor& bias,
      const Value& x,
      const std::vector<int64_t>& out_spatial);
};

} // namespace cakes::models
