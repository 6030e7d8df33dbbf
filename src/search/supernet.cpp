#include "cakes/search/supernet.h"

#include "cakes/models/zoo.h"

#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>

namespace cakes::search {
namespace {

// Every candidate at full width, one stage, N * C_out channels in candidate
// order; summing per index (for positions without a reader) is ChannelView's.
LayerPlan
super_plan(const std::vector<SubKernel>& candidates, const Position& p) {
  if (candidates.empty())
    throw std::invalid_argument("super: no candidate sub-kernels");
  std::vector<KernelGroup> groups;
  for (const auto& k : candidates)
    groups.push_back({k, p.out_channels});
  return LayerPlan{Config(std::move(groups))};
}

void register_super_op() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_op(
        "super",
        [](const OpSpec& spec, const std::vector<Position>&) -> OpFactory {
          if (!spec.configs.empty())
            throw std::invalid_argument(
                "operation 'super' takes no per-block configurations");
          const auto cands =
              spec.candidates.empty() ? video_candidates() : spec.candidates;
          return [cands](size_t, const Position& p) {
            return super_plan(cands, p);
          };
        });
  });
}

} // namespace

at::Tensor ChannelView::forward(
    nn::OpLayerImpl& layer, const at::Tensor& x, const at::Tensor& residual) {
  auto stages = layer.stages();
  if (inputs.defined())
    for (auto& w : stages.front())
      w = w.index_select(1, inputs);
  if (outputs.defined()) {
    // Group g owns channels [offset, offset + c) of the last stage.
    auto& last = stages.back();
    int64_t offset = 0;
    for (auto& w : last) {
      const int64_t c = w.size(0);
      const auto in_group =
          outputs.ge(offset).logical_and(outputs.lt(offset + c));
      w = w.index_select(0, outputs.masked_select(in_group) - offset);
      offset += c;
    }
  }
  auto y = layer.normalize(layer.convolve(x, stages), outputs);
  if (summed_width_ > 0) {
    auto sizes = y.sizes().vec();
    if (outputs.defined()) {
      sizes[1] = summed_width_;
      y = torch::zeros(sizes, y.options())
              .index_add(1, outputs.remainder(summed_width_), y);
    } else {
      sizes[1] = summed_width_;
      sizes.insert(sizes.begin() + 1, y.size(1) / summed_width_);
      y = y.reshape(sizes).sum(1);
    }
  }
  return layer.finish(y, residual);
}

int64_t ChannelView::out_channels(const nn::OpLayerImpl& layer) const {
  if (summed_width_ > 0)
    return summed_width_;
  return outputs.defined() ? outputs.numel()
                           : layer.options.plan().back().out_channels();
}

SuperNet build_supernet(
    models::NetworkSpec spec,
    std::vector<SubKernel> candidates,
    const models::BuildOptions& options) {
  if (candidates.empty())
    throw std::invalid_argument("super-network: no candidate sub-kernels");
  register_super_op();
  SuperNet net;
  spec.op = OpSpec{"super", {}, candidates};
  net.candidates = candidates;
  net.model = models::build(spec, options);
  net.positions = models::network_positions(spec);
  // One view per layer module: a layer may be searched and read a searched
  // one (the basic block's second convolution).
  std::map<std::string, int64_t> summed_width;
  for (const auto& p : net.positions)
    summed_width[p.name] = p.reader.empty() ? p.out_channels : 0;
  std::map<std::string, std::shared_ptr<ChannelView>> views;
  auto view = [&](const std::string& name) {
    auto& v = views[name];
    if (!v) {
      const auto it = summed_width.find(name);
      v = std::make_shared<ChannelView>(
          it == summed_width.end() ? 0 : it->second);
      net.model.network->layer(name)->set_extension(v);
    }
    return v;
  };
  for (size_t i = 0; i < net.positions.size(); ++i) {
    const auto& p = net.positions[i];
    SearchLayer l;
    l.position = i;
    l.name = p.name;
    l.width = p.out_channels;
    l.layer = net.model.network->layer(p.name);
    l.summed = p.reader.empty();
    l.view = view(p.name);
    if (!l.summed) {
      l.reader = net.model.network->layer(p.reader);
      l.reader_view = view(p.reader);
    }
    net.layers.push_back(std::move(l));
  }
  return net;
}

void select(SuperNet& net, const std::vector<std::vector<int64_t>>& kept) {
  if (kept.size() != net.layers.size())
    throw std::invalid_argument("select: one index list per searched layer");
  for (size_t l = 0; l < kept.size(); ++l) {
    auto k = kept[l];
    std::sort(k.begin(), k.end());
    const auto idx = torch::tensor(k, torch::kLong);
    net.layers[l].view->outputs = idx;
    if (!net.layers[l].summed)
      net.layers[l].reader_view->inputs = idx;
  }
}

void clear_selection(SuperNet& net) {
  for (auto& l : net.layers) {
    l.view->outputs = at::Tensor();
    if (!l.summed)
      l.reader_view->inputs = at::Tensor();
  }
}

} // namespace cakes::search
