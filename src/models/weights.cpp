#include "cakes/models/weights.h"
#include "cakes/util/check.h"

#include "cakes/models/i3d_resnet.h"
#include "cakes/models/staged_copy.h"
#include "cakes/nn/op_layer.h"
#include "cakes/util/zip_check.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <vector>

namespace cakes::models {
namespace {

// A tensor source keyed by name that remembers which keys were used.
struct Source {
  std::map<std::string, at::Tensor> tensors;
  std::set<std::string> used;
  std::string what;

  bool has(const std::string& k) const {
    return tensors.count(k) > 0;
  }
  const at::Tensor& get(const std::string& k) {
    auto it = tensors.find(k);
    if (it == tensors.end())
      throw std::invalid_argument(what + " has no key '" + k + "'");
    used.insert(k);
    return it->second;
  }
};

std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return s.substr(0, s.size() - suffix.size());
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

// Torchvision-style names of the conv and BatchNorm behind one of our OpLayers:
// "conv1" -> (conv1, bn1), "layer1.0.conv3" -> (layer1.0.conv3, layer1.0.bn3),
// "layer2.0.downsample" -> (layer2.0.downsample.0, layer2.0.downsample.1).
std::pair<std::string, std::string> resnet_names(const std::string& layer) {
  const auto dot = layer.rfind('.');
  const std::string parent =
      dot == std::string::npos ? "" : layer.substr(0, dot + 1);
  const std::string leaf =
      dot == std::string::npos ? layer : layer.substr(dot + 1);
  if (leaf == "downsample")
    return {layer + ".0", layer + ".1"};
  if (starts_with(leaf, "conv"))
    return {layer, parent + "bn" + leaf.substr(4)};
  throw std::invalid_argument("no ResNet name for layer '" + layer + "'");
}

std::vector<std::pair<std::string, nn::OpLayerImpl*>>
op_layers(I3DResNetImpl& net) {
  std::vector<std::pair<std::string, nn::OpLayerImpl*>> out;
  for (const auto& [name, layer] : net.layers())
    out.emplace_back(name, layer.ptr().get());
  return out;
}

// `order` (optional): the source channel of each of our channels.
void stage_bn(
    nn::OpLayerImpl& layer,
    const std::string& ours,
    const std::string& theirs,
    Source& src,
    StagedCopy& staged,
    const at::Tensor& order = {}) {
  auto channels = [&](const at::Tensor& t) {
    return order.defined() && t.dim() == 1 && t.size(0) == order.size(0)
               ? t.index_select(0, order)
               : t;
  };
  for (const auto& p : layer.bn()->named_parameters())
    staged.add(
        ours + ".bn." + p.key(),
        p.value(),
        theirs + "." + p.key(),
        channels(src.get(theirs + "." + p.key())));
  for (const auto& b : layer.bn()->named_buffers()) {
    const std::string k = theirs + "." + b.key();
    // Older PyTorch files have no num_batches_tracked; it does not affect
    // outputs.
    if (b.key() == "num_batches_tracked" && !src.has(k))
      continue;
    staged.add(
        ours + ".bn." + b.key(),
        b.value(),
        k,
        channels(src.get(k).to(b.value().dtype())));
  }
}

void check_all_used(
    const Source& src, const std::string& ignore_prefix = "\x01") {
  for (const auto& kv : src.tensors)
    if (!src.used.count(kv.first) && !starts_with(kv.first, ignore_prefix))
      throw std::invalid_argument(
          src.what + ": key '" + kv.first + "' " + shape_str(kv.second) +
          " matches nothing in the network");
}

void require_single_stage(nn::OpLayerImpl& l, const std::string& name) {
  if (l.stages().size() != 1)
    throw std::invalid_argument(
        "layer " + name + " has " + std::to_string(l.stages().size()) +
        " convolution stages (" + l.describe() +
        "); this weight layout has one");
}

} // namespace

std::map<std::string, at::Tensor>
read_pytorch_tensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw std::invalid_argument("cannot read '" + path + "'");
  std::vector<char> bytes(
      (std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // torch.save writes a zip archive whose CRCs LibTorch does not check.
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\3\4", 4) == 0)
    util::verify_zip(bytes.data(), bytes.size(), path);
  c10::IValue v;
  try {
    v = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw std::invalid_argument(
        "'" + path +
        "' is not a PyTorch file of tensors: " + msg.substr(0, msg.find('\n')));
  }
  if (!v.isGenericDict())
    throw std::invalid_argument(
        "'" + path + "' does not hold a dict of tensors");
  std::map<std::string, at::Tensor> out;
  for (const auto& kv : v.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor())
      throw std::invalid_argument("'" + path + "' holds a non-tensor entry");
    out[kv.key().toStringRef()] = kv.value().toTensor();
  }
  return out;
}

void import_paper_state_dict(I3DResNetImpl& net, const std::string& path) {
  if (net.options.depth() != 50 && net.options.depth() != 101)
    throw std::invalid_argument(
        "the paper's layout exists for bottleneck ResNets (50, 101), not "
        "depth " +
        std::to_string(net.options.depth()));
  Source src;
  src.what = path;
  for (auto& kv : read_pytorch_tensors(path))
    src.tensors
        [starts_with(kv.first, "module.") ? kv.first.substr(7) : kv.first] =
        kv.second;
  StagedCopy staged;
  try {
    for (auto& [name, layer] : op_layers(net)) {
      require_single_stage(*layer, name);
      const bool cakes_position =
          name.size() > 6 && name.substr(name.size() - 6) == ".conv2";
      if (cakes_position) {
        const std::string base =
            "base_model." + strip_suffix(name, "conv2") + "convT";
        const auto& cfg = layer->options.plan()[0];
        if (!cfg.output_index().empty())
          throw std::invalid_argument(
              "layer " + name +
              ": the paper's layout has no output_index (channel order)");
        int idx = 0;
        for (const char* k : {"3x3x3", "1x3x3", "3x1x1"}) {
          for (size_t g = 0; g < cfg.groups().size(); ++g)
            if (cfg.groups()[g].kernel.str() == k &&
                cfg.groups()[g].channels > 0) {
              const std::string key =
                  base + ".convs." + std::to_string(idx++) + ".0.weight";
              staged.add(
                  name + ".weight_" + k,
                  layer->stages()[0][g],
                  key,
                  src.get(key));
            }
        }
        for (const auto& g : cfg.groups()) {
          const auto k = g.kernel.str();
          if (k != "3x3x3" && k != "1x3x3" && k != "3x1x1")
            throw std::invalid_argument(
                "layer " + name + ": sub-kernel " + k +
                " has no place in the paper's layout");
        }
        stage_bn(*layer, name, base + ".out.0", src, staged);
      } else {
        const auto [conv, bn] = resnet_names(name);
        const auto& g = layer->options.plan()[0].groups()[0];
        staged.add(
            name + ".weight_" + g.kernel.str(),
            layer->stages()[0][0],
            "base_model." + conv + ".weight",
            src.get("base_model." + conv + ".weight"));
        stage_bn(*layer, name, "base_model." + bn, src, staged);
      }
    }
    for (const auto& p : net.named_parameters())
      if (starts_with(p.key(), "fc."))
        staged.add(
            p.key(),
            p.value(),
            "new_fc." + p.key().substr(3),
            src.get("new_fc." + p.key().substr(3)));
    check_all_used(src);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("import: ") + e.what());
  }
  staged.commit();
}

at::Tensor
inflate_kernel(const at::Tensor& w, int64_t kd, int64_t kh, int64_t kw) {
  CAKES_CHECK(
      w.dim() == 4 && w.size(2) == 3 && w.size(3) == 3,
      "inflate_kernel: expected a (c, C_in, 3, 3) kernel, got ",
      w.sizes());
  const int64_t c = w.size(0), ci = w.size(1);
  const int n3 = int(kd == 3) + int(kh == 3) + int(kw == 3);
  CAKES_CHECK(
      (kd == 1 || kd == 3) && (kh == 1 || kh == 3) && (kw == 1 || kw == 3),
      "inflate_kernel: sub-kernel extents must be 1 or 3");
  if (n3 == 3) // 3D: the 2D kernel repeated along time, divided by 3
    return w.unsqueeze(2).repeat({1, 1, 3, 1, 1}) / 3.0;
  if (n3 == 2) // 2D: the kernel itself, its (rows, cols) on the two 3-axes
    return w.reshape({c, ci, kd, kh, kw});
  // 1D (and 1x1x1): the sum over the 3x3 taps, repeated along the 3-axis, /3.
  const auto s = w.sum({2, 3}).reshape({c, ci, 1, 1, 1});
  return n3 == 0 ? s : s.expand({c, ci, kd, kh, kw}) / 3.0;
}

void inflate_2d_resnet(I3DResNetImpl& net, const std::string& path) {
  Source src;
  src.what = path;
  src.tensors = read_pytorch_tensors(path);
  StagedCopy staged;
  try {
    for (auto& [name, layer] : op_layers(net)) {
      require_single_stage(*layer, name);
      const auto [conv, bn] = resnet_names(name);
      auto w2 = src.get(conv + ".weight");
      const auto& cfg = layer->options.plan()[0];
      if (w2.dim() != 4 || w2.size(0) != cfg.conv_channels() ||
          cfg.out_channels() != cfg.conv_channels())
        throw std::invalid_argument(
            "key '" + conv + ".weight' has shape " + shape_str(w2) + " but " +
            name + " has " + std::to_string(cfg.conv_channels()) +
            " channels and " + std::to_string(cfg.out_channels()) + " outputs");
      // A reordered layer (output_index, a searched residual position) sends
      // its channel i to output channel output_index[i]: it takes the 2D
      // network's filter and BatchNorm entries of that output channel.
      at::Tensor order;
      if (!cfg.output_index().empty()) {
        order = torch::tensor(cfg.output_index(), torch::kLong);
        w2 = w2.index_select(0, order);
      }
      int64_t off = 0;
      for (size_t g = 0; g < cfg.groups().size(); ++g) {
        const auto& k = cfg.groups()[g].kernel;
        const auto part = w2.narrow(0, off, cfg.groups()[g].channels);
        off += cfg.groups()[g].channels;
        at::Tensor v;
        if (w2.size(2) == 3 && w2.size(3) == 3)
          v = inflate_kernel(part, k.d, k.h, k.w);
        else // stem 7x7 and 1x1 convs: a time axis of 1
          v = part.unsqueeze(2);
        staged.add(
            name + ".weight_" + k.str(),
            layer->stages()[0][g],
            conv + ".weight",
            v);
      }
      stage_bn(*layer, name, bn, src, staged, order);
    }
    check_all_used(src, "fc.");
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("inflate: ") + e.what());
  }
  staged.commit();
}

} // namespace cakes::models
