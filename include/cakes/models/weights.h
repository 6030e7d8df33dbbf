// Weights from elsewhere into our networks (checkpoints of our own are
// train/checkpoint.h):
// - import of a state dict written by PyTorch's torch.save with the key names
//   of the paper's code (docs/WEIGHTS.md);
// - inflation of a torchvision 2D ResNet state dict into an I3D ResNet
//   (docs/CAKES.md §5).
//
// Every loader first reads and checks every tensor (key present, shape equal)
// and only then copies: on error the network is unchanged and the
// std::invalid_argument names the key and both shapes.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace cakes::models {

class I3DResNetImpl;

// A dict of tensors saved by Python's torch.save (zip format), keys as saved.
std::map<std::string, at::Tensor> read_pytorch_tensors(const std::string& path);

// Paper layout (bottleneck depths 50/101; operations with one convolution
// stage): base_model.{conv1,bn1}, base_model.layerS.B.{conv1,bn1,conv3,bn3},
// base_model.layerS.B.convT.convs.<i>.0.weight (the CAKES groups in the order
// 3x3x3, 1x3x3, 3x1x1, empty ones skipped), base_model.layerS.B.convT.out.0.*
// (its BatchNorm), base_model.layerS.B.downsample.{0,1}, new_fc; an optional
// "module." prefix. Keys left over in the file are an error too.
void import_paper_state_dict(I3DResNetImpl& net, const std::string& path);

// torchvision ResNet keys (conv1, bn1, layerS.B.convI, layerS.B.bnI,
// layerS.B.downsample.{0,1}; fc.* ignored: the classifier stays as it is).
// Each 3x3 kernel is inflated per sub-kernel and output channel (docs/CAKES.md
// §5); 7x7 and 1x1 kernels get a time axis of 1.
void inflate_2d_resnet(I3DResNetImpl& net, const std::string& path);

// docs/CAKES.md §5 for one 2D kernel (c, C_in, 3, 3) to sub-kernel (kd, kh,
// kw).
at::Tensor
inflate_kernel(const at::Tensor& w2d, int64_t kd, int64_t kh, int64_t kw);

} // namespace cakes::models
