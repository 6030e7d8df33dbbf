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
#include <utility>
#include <vector>

#include "cakes/models/model.h"

#include <ATen/core/Tensor.h>

namespace cakes::models {

class I3DResNetImpl;

// The state dict in a file written by Python's torch.save, read without
// Python (src/models/torch_file.cpp): zip format (PyTorch >= 1.6) or legacy
// format (earlier, or _use_new_zipfile_serialization=False); a dict or an
// OrderedDict of tensors, alone or as the "state_dict" entry of a training
// checkpoint dict ({'epoch', 'arch', 'state_dict', 'best_prec1'}, other
// entries ignored); storages of any device (cpu, cuda:N) read onto the CPU;
// DataParallel's "module." prefix stripped. Tensors in file order. Throws
// std::invalid_argument (one line naming the file) on a missing, truncated,
// corrupt or unsupported file, or an entry that is not a tensor.
struct TorchFile {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  std::string form; // e.g. "legacy format, checkpoint dict, module. prefix"
};
TorchFile read_torch_file(const std::string& path);

// read_torch_file's tensors by name.
std::map<std::string, at::Tensor> read_pytorch_tensors(const std::string& path);

// Paper layout (docs/WEIGHTS.md; bottleneck depths 50/101):
// base_model.{conv1,bn1}, base_model.layerS.B.{conv1,bn1,conv3,bn3},
// base_model.layerS.B.downsample.{0,1}, new_fc (or base_model.fc), and per
// block the operation module convT:
// - conv3d, conv2d: convT.op.0 (conv), convT.op.1 (norm);
// - p3d: convT.op.0 (1x3x3), convT.op.1 (3x1x1), convT.op.2 (norm);
// - the CAKES codes: convT.convs.<i>.0.weight, one per non-empty group in
//   the configuration's order, and convT.out.0 (or convT.norm) the norm.
// Keys left over in the file are an error too; `what` names the source.
void import_paper_state_dict(
    I3DResNetImpl& net,
    const std::map<std::string, at::Tensor>& tensors,
    const std::string& what);
// The same from a file (read_pytorch_tensors).
void import_paper_state_dict(I3DResNetImpl& net, const std::string& path);

// The network a state dict in the paper's layout describes: depth from the
// blocks per stage, width from base_model.conv1, classes from the classifier,
// operation from the layer1.0 convT keys, and for the CAKES codes one
// configuration per block from the shapes of its convT.convs (sub-kernel,
// channels; file order). A search super-network of the paper (every group
// at full width, one norm over all of them) gives op "super" with the
// candidates in file order; build it with search::build_supernet. Its conv3
// reads all N * C_out channels (cost priority: the structure of
// search/supernet.h, import_paper_state_dict loads it as is) or, in the
// performance-priority *_dropout codes, C_out of them
// (paper_supernet_reads_kept). Throws std::invalid_argument (one line) when
// the keys are not that layout.
NetworkSpec paper_network_spec(
    const std::map<std::string, at::Tensor>& tensors, const std::string& what);

// For a file paper_network_spec gives op "super": whether its conv3s read
// C_out channels, the kept ones by position (the paper's performance-priority
// super-networks), rather than all N * C_out.
bool paper_supernet_reads_kept(
    const std::map<std::string, at::Tensor>& tensors);

// read_torch_file + paper_network_spec + build + import_paper_state_dict:
// the paper's file as our network (not a super-network: an error). `form`, when
// given, receives the file's form (read_torch_file).
Model import_paper_model(const std::string& path, std::string* form = nullptr);
// The same from a file already read; `path` names it in messages.
Model import_paper_model(const TorchFile& file, const std::string& path);

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
