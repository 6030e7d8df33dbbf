// Weights in and out of our networks.
//
// - Checkpoints: a model (and optionally its optimizer) in LibTorch's archive
//   format (torch::serialize), read back into a network of the same structure.
// - Import of a state dict written by PyTorch's torch.save with the key names
// of
//   the paper's code (docs/WEIGHTS.md).
// - Inflation of a torchvision 2D ResNet state dict into an I3D ResNet (SPEC
// §5).
//
// Every loader first reads and checks every tensor (key present, shape equal)
// and only then copies: on error the network is unchanged and the
// std::invalid_argument names the key and both shapes.
#pragma once

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace cakes::models {

class I3DResNetImpl;

void save_checkpoint(
    const torch::nn::Module& model,
    const std::string& path,
    const torch::optim::Optimizer* optimizer = nullptr);
// The optimizer, when given, must be built over this model's parameters; it is
// loaded after the model has been checked and before the model is written, so
// a bad model section leaves both untouched.
void load_checkpoint(
    torch::nn::Module& model,
    const std::string& path,
    torch::optim::Optimizer* optimizer = nullptr);

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
// Each 3x3 kernel is inflated per sub-kernel and output channel (SPEC §5);
// 7x7 and 1x1 kernels get a time axis of 1.
void inflate_2d_resnet(I3DResNetImpl& net, const std::string& path);

// SPEC §5 for one 2D kernel (c, C_in, 3, 3) to sub-kernel (kd, kh, kw).
at::Tensor
inflate_kernel(const at::Tensor& w2d, int64_t kd, int64_t kh, int64_t kw);

} // namespace cakes::models
