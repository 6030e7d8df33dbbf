#include "cakes/search/inherit.h"

#include <torch/torch.h>

#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

namespace cakes::search {
namespace {

at::Tensor index_tensor(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::kLong);
}

void copy_checked(
    const std::string& what, at::Tensor dst, const at::Tensor& src) {
  if (dst.sizes() != src.sizes())
    throw std::logic_error(
        "inherit: " + what + " does not fit the derived network");
  dst.copy_(src);
}

} // namespace

models::Model inherit(const SuperNet& net, const Derivation& d) {
  if (d.kept.size() != net.layers.size())
    throw std::invalid_argument("inherit: one kept list per searched layer");
  models::NetworkSpec spec = net.model.spec;
  spec.op = OpSpec{"cakes", d.configs, net.candidates};
  auto m = models::build(spec);
  torch::NoGradGuard no_grad;

  // Which channels each layer keeps: its output rows (searched layers) and
  // input columns (their readers); all of them elsewhere.
  std::map<std::string, at::Tensor> rows, cols;
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const auto& L = net.layers[l];
    rows[L.name] = index_tensor(d.kept[l]);
    if (!L.summed)
      cols[net.positions[L.position].reader] = index_tensor(d.kept[l]);
  }
  std::set<const void*> done;
  for (const auto& [name, dst] : m.network->layers()) {
    const auto src = net.model.network->layer(name);
    const auto r = rows.find(name);
    const auto c = cols.find(name);
    const auto& src_stages = src->stages();
    const auto& dst_stages = dst->stages();
    if (src_stages.size() != dst_stages.size())
      throw std::logic_error("inherit: layer " + name + " changed its stages");
    for (size_t s = 0; s < dst_stages.size(); ++s) {
      const bool last = s + 1 == dst_stages.size();
      for (size_t g = 0; g < dst_stages[s].size(); ++g) {
        at::Tensor w = src_stages[s].at(g);
        if (last && r != rows.end()) {
          // Candidate g holds the layer's channels [g*width, (g+1)*width).
          const int64_t width = w.size(0);
          const auto kept = r->second;
          const auto mine = kept.ge(int64_t(g) * width)
                                .logical_and(kept.lt(int64_t(g + 1) * width));
          w = w.index_select(0, kept.masked_select(mine) - int64_t(g) * width);
        }
        if (s == 0 && c != cols.end())
          w = w.index_select(1, c->second);
        copy_checked(name + " weights", dst_stages[s][g], w);
        done.insert(dst_stages[s][g].unsafeGetTensorImpl());
      }
    }
    const auto& sb = src->bn();
    const auto& db = dst->bn();
    auto entries = [&](const at::Tensor& t) {
      return r != rows.end() ? t.index_select(0, r->second) : t;
    };
    for (const auto& [what, from, to] :
         std::vector<std::tuple<std::string, at::Tensor, at::Tensor>>{
             {"bn.weight", sb->weight, db->weight},
             {"bn.bias", sb->bias, db->bias},
             {"bn.running_mean", sb->running_mean, db->running_mean},
             {"bn.running_var", sb->running_var, db->running_var}}) {
      if (!to.defined())
        continue;
      copy_checked(name + "." + what, to, entries(from));
      done.insert(to.unsafeGetTensorImpl());
    }
    copy_checked(
        name + ".bn.num_batches_tracked",
        db->num_batches_tracked,
        sb->num_batches_tracked);
    done.insert(db->num_batches_tracked.unsafeGetTensorImpl());
  }
  // Everything outside the layers (the classifier) is the same tensor.
  std::map<std::string, at::Tensor> src_tensors;
  for (const auto& kv : net.model.module->named_parameters(true))
    src_tensors[kv.key()] = kv.value();
  for (const auto& kv : net.model.module->named_buffers(true))
    src_tensors[kv.key()] = kv.value();
  auto copy_rest = [&](const std::string& key, at::Tensor dst) {
    if (done.count(dst.unsafeGetTensorImpl()))
      return;
    const auto it = src_tensors.find(key);
    if (it == src_tensors.end())
      throw std::logic_error("inherit: the super-network has no " + key);
    copy_checked(key, dst, it->second);
  };
  for (auto& kv : m.module->named_parameters(true))
    copy_rest(kv.key(), kv.value());
  for (auto& kv : m.module->named_buffers(true))
    copy_rest(kv.key(), kv.value());
  return m;
}

} // namespace cakes::search
