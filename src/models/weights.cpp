#include "cakes/models/weights.h"
#include "cakes/util/check.h"

#include "cakes/models/i3d_resnet.h"
#include "cakes/models/staged_copy.h"
#include "cakes/models/zoo.h"
#include "cakes/nn/op_layer.h"
#include "cakes/util/messages.h"
#include "cakes/util/zip_check.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <cstdio>
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
    const at::Tensor& order = {},
    int64_t repeat = 1) {
  auto channels = [&](at::Tensor t) {
    if (order.defined() && t.dim() == 1 && t.size(0) == order.size(0))
      t = t.index_select(0, order);
    return repeat > 1 && t.dim() == 1 ? t.repeat({repeat}) : t;
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

namespace {

// "weight_3x3x3" or "stage1_weight_3x1x1": the registered name (op_layer.h).
std::string
weight_name(const nn::OpLayerImpl& l, size_t stage, const SubKernel& k) {
  return (l.stages().size() > 1 ? "stage" + std::to_string(stage) + "_" : "") +
         "weight_" + k.str();
}

// The paper's classifier: new_fc (its dropout > 0, the default) or the
// backbone's fc (dropout 0).
std::string paper_fc(const std::map<std::string, at::Tensor>& sd) {
  return sd.count("new_fc.weight") || !sd.count("base_model.fc.weight")
             ? "new_fc"
             : "base_model.fc";
}

// Stages one convT (the paper's operation module of a bottleneck) into our
// layer at that position.
void stage_convt(
    nn::OpLayerImpl& layer,
    const std::string& name,
    const std::string& base,
    Source& src,
    StagedCopy& staged) {
  const auto& plan = layer.options.plan();
  std::string bn;
  if (src.has(base + ".op.0.weight")) {
    // conv3d, conv2d: op.0 conv, op.1 norm; P3D: op.0 and op.1 convs (1x3x3,
    // 3x1x1), op.2 norm.
    for (size_t s = 0; s < plan.size(); ++s) {
      if (plan[s].groups().size() != 1)
        throw std::invalid_argument(
            "layer " + name + " is " + layer.describe() +
            " but the file has a plain operation (convT.op) there");
      const std::string key = base + ".op." + std::to_string(s) + ".weight";
      staged.add(
          name + "." + weight_name(layer, s, plan[s].groups()[0].kernel),
          layer.stages()[s][0],
          key,
          src.get(key));
    }
    bn = base + ".op." + std::to_string(plan.size());
  } else {
    require_single_stage(layer, name);
    const auto& cfg = plan[0];
    if (!cfg.output_index().empty())
      throw std::invalid_argument(
          "layer " + name +
          ": the paper's layout has no output_index (channel order)");
    // One convs.<i> per non-empty group, in the configuration's order (the
    // order of the norm's channels).
    int idx = 0;
    for (size_t g = 0; g < cfg.groups().size(); ++g)
      if (cfg.groups()[g].channels > 0) {
        const std::string key =
            base + ".convs." + std::to_string(idx++) + ".0.weight";
        staged.add(
            name + "." + weight_name(layer, 0, cfg.groups()[g].kernel),
            layer.stages()[0][g],
            key,
            src.get(key));
      }
    // convT.out.0, or convT.norm in the performance-priority codes.
    bn = src.has(base + ".norm.weight") ? base + ".norm" : base + ".out.0";
  }
  stage_bn(layer, name, bn, src, staged);
}

int64_t shape_at(const at::Tensor& t, int64_t d) {
  return t.dim() > d ? t.size(d) : -1;
}

} // namespace

void import_paper_state_dict(
    I3DResNetImpl& net,
    const std::map<std::string, at::Tensor>& tensors,
    const std::string& what) {
  if (net.options.depth() != 50 && net.options.depth() != 101)
    throw std::invalid_argument(
        "the paper's layout exists for bottleneck ResNets (50, 101), not "
        "depth " +
        std::to_string(net.options.depth()));
  Source src;
  src.what = what;
  src.tensors = tensors;
  StagedCopy staged;
  try {
    for (auto& [name, layer] : op_layers(net)) {
      const bool op_position =
          name.size() > 6 && name.substr(name.size() - 6) == ".conv2";
      if (op_position) {
        stage_convt(
            *layer,
            name,
            "base_model." + strip_suffix(name, "conv2") + "convT",
            src,
            staged);
      } else {
        require_single_stage(*layer, name);
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
    const std::string fc = paper_fc(src.tensors);
    for (const auto& p : net.named_parameters())
      if (starts_with(p.key(), "fc."))
        staged.add(
            p.key(),
            p.value(),
            fc + "." + p.key().substr(3),
            src.get(fc + "." + p.key().substr(3)));
    check_all_used(src);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("import: ") + e.what());
  }
  staged.commit();
}

void import_paper_state_dict(I3DResNetImpl& net, const std::string& path) {
  import_paper_state_dict(net, read_pytorch_tensors(path), path);
}

NetworkSpec paper_network_spec(
    const std::map<std::string, at::Tensor>& sd, const std::string& what) {
  // Blocks per stage from base_model.layerS.B.* keys.
  std::map<int, int> blocks;
  for (const auto& kv : sd) {
    int s = 0, b = 0, n = 0;
    if (std::sscanf(kv.first.c_str(), "base_model.layer%d.%d.%n", &s, &b, &n) ==
            2 &&
        n > 0 && s >= 1 && s <= 4 && b >= 0 && b < 1000)
      blocks[s] = std::max(blocks[s], b + 1);
  }
  if (blocks.empty())
    throw std::invalid_argument(
        "'" + what +
        "' is not in the paper's layout: no key starts with "
        "base_model.layer (keys start " +
        (sd.empty() ? std::string("nowhere: it is empty")
                    : util::one_line(sd.begin()->first, 60)) +
        ")");
  const std::vector<int> per{blocks[1], blocks[2], blocks[3], blocks[4]};
  int64_t depth = 0;
  if (per == std::vector<int>{3, 4, 6, 3})
    depth = 50;
  else if (per == std::vector<int>{3, 4, 23, 3})
    depth = 101;
  else
    throw std::invalid_argument(
        "'" + what + "': blocks per stage " + std::to_string(per[0]) + ", " +
        std::to_string(per[1]) + ", " + std::to_string(per[2]) + ", " +
        std::to_string(per[3]) +
        " are not the paper's I3D ResNet-50 (3, 4, 6, 3) or ResNet-101 (3, "
        "4, 23, 3)");
  auto need = [&](const std::string& k) -> const at::Tensor& {
    auto it = sd.find(k);
    if (it == sd.end())
      throw std::invalid_argument(
          "'" + what + "' is not in the paper's layout: no key '" + k + "'");
    return it->second;
  };
  NetworkSpec spec;
  spec.network = "i3d_resnet" + std::to_string(depth);
  spec.width = shape_at(need("base_model.conv1.weight"), 0);
  spec.num_classes = shape_at(need(paper_fc(sd) + ".weight"), 0);
  spec.in_channels = 3;
  const auto positions = i3d_resnet_positions(depth, spec.width);
  const std::string first = "base_model.layer1.0.convT.";
  if (sd.count(first + "op.0.weight")) {
    const auto& w = sd.at(first + "op.0.weight");
    if (sd.count(first + "op.2.weight"))
      spec.op.op = "p3d";
    else if (w.dim() == 5 && w.size(2) == 3 && w.size(3) == 3 && w.size(4) == 3)
      spec.op.op = "conv3d";
    else if (w.dim() == 5 && w.size(2) == 1 && w.size(3) == 3 && w.size(4) == 3)
      spec.op.op = "conv2d";
    else
      throw std::invalid_argument(
          "'" + what + "': " + first + "op.0.weight has shape " + shape_str(w) +
          ", not a convolution the paper has");
    return spec;
  }
  // The CAKES codes: per position, one convs.<i> per non-empty group, its
  // sub-kernel and channels read from the weight's shape, in file order. A
  // search super-network (every group at full width, the norm over all of
  // them, conv3 reading them all) is the "super" operation over the
  // candidates in file order.
  std::vector<Config> configs;
  std::vector<SubKernel> candidates;
  int supers = 0;
  bool kept_only = false;
  for (const auto& p : positions) {
    const std::string block = strip_suffix(p.name, ".conv2");
    const std::string base = "base_model." + block + ".convT.convs.";
    std::vector<KernelGroup> groups;
    int64_t total = 0;
    bool full = true;
    for (int i = 0; sd.count(base + std::to_string(i) + ".0.weight"); ++i) {
      const auto& w = sd.at(base + std::to_string(i) + ".0.weight");
      if (w.dim() != 5)
        throw std::invalid_argument(
            "'" + what + "': " + base + std::to_string(i) +
            ".0.weight has shape " + shape_str(w) + ", not a 3D convolution");
      SubKernel k{w.size(2), w.size(3), w.size(4)};
      groups.push_back(KernelGroup{k, w.size(0)});
      total += w.size(0);
      full = full && w.size(0) == p.out_channels;
    }
    if (groups.empty())
      throw std::invalid_argument(
          "'" + what + "' is not in the paper's layout: block " + block +
          " has neither convT.op nor convT.convs weights");
    if (total == p.out_channels) {
      configs.push_back(Config(groups));
      continue;
    }
    if (!full || groups.size() < 2)
      throw std::invalid_argument(
          "'" + what + "': block " + block + " has groups of " +
          std::to_string(total) + " channels in all for " +
          std::to_string(p.out_channels) + " outputs");
    // A super-network block: conv3 reads all N * C_out channels (cost
    // priority) or C_out of them, the kept ones by position (performance
    // priority); every block the same.
    const int64_t reads =
        shape_at(need("base_model." + block + ".conv3.weight"), 1);
    if (reads != total && reads != p.out_channels)
      throw std::invalid_argument(
          "'" + what + "': block " + block + "'s conv3 reads " +
          std::to_string(reads) + " channels, neither its " +
          std::to_string(total) + " (all groups) nor " +
          std::to_string(p.out_channels) + " (one group's width)");
    const bool reads_kept = reads != total;
    if (supers > 0 && reads_kept != kept_only)
      throw std::invalid_argument(
          "'" + what + "': block " + block +
          " mixes performance- and cost-priority super-network blocks");
    kept_only = reads_kept;
    std::vector<SubKernel> kernels;
    for (const auto& g : groups)
      kernels.push_back(g.kernel);
    if (supers++ == 0)
      candidates = kernels;
    else if (kernels != candidates)
      throw std::invalid_argument(
          "'" + what + "': block " + block + " has candidates " +
          kernels_str(kernels) + ", the first block " +
          kernels_str(candidates));
  }
  if (supers > 0 && supers != int(positions.size()))
    throw std::invalid_argument(
        "'" + what +
        "' mixes super-network blocks and derived blocks; it is neither");
  if (supers > 0)
    spec.op = OpSpec{"super", {}, candidates};
  else
    spec.op = OpSpec{"cakes", configs, {}};
  return spec;
}

bool paper_supernet_reads_kept(const std::map<std::string, at::Tensor>& sd) {
  const auto conv3 = sd.find("base_model.layer1.0.conv3.weight");
  const auto conv1 = sd.find("base_model.layer1.0.conv1.weight");
  return conv3 != sd.end() && conv1 != sd.end() &&
         shape_at(conv3->second, 1) == shape_at(conv1->second, 0);
}

Model import_paper_model(const std::string& path, std::string* form) {
  const auto file = read_torch_file(path);
  if (form)
    *form = file.form;
  return import_paper_model(file, path);
}

Model import_paper_model(const TorchFile& file, const std::string& path) {
  std::map<std::string, at::Tensor> sd;
  for (auto& [k, v] : file.tensors)
    sd[k] = v;
  const auto spec = paper_network_spec(sd, path);
  if (spec.op.op == "super")
    throw std::invalid_argument(
        "'" + path +
        "' holds a search super-network of the paper's code: cakes import "
        "and --init derive and import it (search::build_supernet)");
  auto model = build(spec);
  auto net = std::dynamic_pointer_cast<I3DResNetImpl>(model.module);
  CAKES_CHECK(net, "import: ", spec.network, " is not an I3D ResNet");
  import_paper_state_dict(*net, sd, path);
  return model;
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
      const auto& groups = cfg.groups();
      const int64_t c2 = w2.dim() == 4 ? w2.size(0) : -1;
      // A super-network position (docs/CAKES.md §4): every candidate at full
      // width, one norm over them all. Each candidate takes the whole 2D
      // kernel inflated to it; the norm is the 2D norm repeated per
      // candidate.
      bool super = groups.size() > 1 &&
                   cfg.conv_channels() == c2 * int64_t(groups.size());
      for (const auto& g : groups)
        super = super && g.channels == c2;
      if (w2.dim() != 4 ||
          (!super && (c2 != cfg.conv_channels() ||
                      cfg.out_channels() != cfg.conv_channels())))
        throw std::invalid_argument(
            "key '" + conv + ".weight' has shape " + shape_str(w2) + " but " +
            name + " has " + std::to_string(cfg.conv_channels()) +
            " channels and " + std::to_string(cfg.out_channels()) + " outputs");
      // A reader of a super-network position reads its N * C channels: the
      // 2D input weights repeated N times (SPEC §5).
      const int64_t ours_in = layer->stages()[0][0].size(1);
      const int64_t in_repeat =
          w2.size(1) > 0 && ours_in > w2.size(1) && ours_in % w2.size(1) == 0
              ? ours_in / w2.size(1)
              : 1;
      // A reordered layer (output_index, a searched residual position) sends
      // its channel i to output channel output_index[i]: it takes the 2D
      // network's filter and BatchNorm entries of that output channel.
      at::Tensor order;
      if (!cfg.output_index().empty()) {
        order = torch::tensor(cfg.output_index(), torch::kLong);
        w2 = w2.index_select(0, order);
      }
      int64_t off = 0;
      for (size_t g = 0; g < groups.size(); ++g) {
        const auto& k = groups[g].kernel;
        const auto part = super ? w2 : w2.narrow(0, off, groups[g].channels);
        off += super ? 0 : groups[g].channels;
        at::Tensor v;
        if (w2.size(2) == 3 && w2.size(3) == 3)
          v = inflate_kernel(part, k.d, k.h, k.w);
        else // stem 7x7 and 1x1 convs: a time axis of 1
          v = part.unsqueeze(2);
        if (in_repeat > 1)
          v = v.repeat({1, in_repeat, 1, 1, 1});
        staged.add(
            name + ".weight_" + k.str(),
            layer->stages()[0][g],
            conv + ".weight",
            v);
      }
      stage_bn(
          *layer,
          name,
          bn,
          src,
          staged,
          order,
          super ? int64_t(groups.size()) : 1);
    }
    check_all_used(src, "fc.");
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("inflate: ") + e.what());
  }
  staged.commit();
}

} // namespace cakes::models
