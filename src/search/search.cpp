#include "cakes/search/search.h"

#include "cakes/train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>

namespace cakes::search {
namespace {

const char* const kSearchPrefix = "cakes-search ";

int64_t num(const SuperNet& net) {
  return static_cast<int64_t>(net.candidates.size());
}

int candidate_index(const SuperNet& net, const std::string& kernel) {
  for (size_t n = 0; n < net.candidates.size(); ++n)
    if (net.candidates[n].str() == kernel)
      return static_cast<int>(n);
  return -1;
}

torch::Tensor index_tensor(const std::vector<int64_t>& v) {
  return torch::tensor(v, torch::kLong);
}

double median_ms(const std::function<void()>& fn, int repeats) {
  fn(); // warm-up
  std::vector<double> t;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - a)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

} // namespace

std::vector<SubKernel> parse_candidates(const std::string& text) {
  static const std::map<std::string, std::string> named = {
      {"video_12d", "1x3x3,3x1x1"},
      {"video_23d", "3x3x3,1x3x3"},
      {"video_123d", "3x3x3,1x3x3,3x1x1"},
      {"volumetric_2d", "1x3x3,3x1x3,3x3x1"},
      {"volumetric_1d", "3x1x1,1x3x1,1x1x3"},
      {"volumetric_all", "3x3x3,1x3x3,3x1x3,3x3x1,3x1x1,1x3x1,1x1x3"}};
  const auto it = named.find(text);
  const std::string list = it == named.end() ? text : it->second;
  std::vector<SubKernel> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    SubKernel k;
    try {
      k = SubKernel::parse(item);
    } catch (const std::exception& e) {
      throw std::invalid_argument(
          "unknown candidate '" + item + "' in '" + text +
          "' (expected sub-kernels DxHxW such as 3x3x3,1x3x3,3x1x1, or a set: "
          "video_12d, video_23d, video_123d, volumetric_2d, volumetric_1d, "
          "volumetric_all)");
    }
    for (const auto& o : out)
      if (o == k)
        throw std::invalid_argument(
            "candidate '" + item + "' listed twice in '" + text + "'");
    out.push_back(k);
  }
  if (out.empty())
    throw std::invalid_argument("no candidate sub-kernels in '" + text + "'");
  return out;
}

std::string candidates_str(const std::vector<SubKernel>& c) {
  std::string s;
  for (const auto& k : c)
    s += (s.empty() ? "" : ",") + k.str();
  return s;
}

std::vector<double>
l1_weights(const std::vector<SubKernel>& candidates, bool reweight) {
  double total = 0;
  for (const auto& k : candidates)
    total += double(k.volume());
  std::vector<double> w;
  for (const auto& k : candidates)
    w.push_back(reweight ? double(k.volume()) / total : 1.0);
  return w;
}

SuperNet
build_supernet(models::ModelArgs args, std::vector<SubKernel> candidates) {
  if (candidates.empty())
    throw std::invalid_argument("super-network: no candidate sub-kernels");
  SuperNet net;
  args.op = OpSpec{"super", {}, candidates};
  net.args = args;
  net.candidates = candidates;
  net.model = models::make_model(args);
  net.positions = models::network_positions(args);
  std::map<std::string, std::shared_ptr<nn::OpLayerImpl>> by_name;
  for (const auto& item :
       net.model.module->named_modules("", /*include_self=*/false))
    if (auto p = std::dynamic_pointer_cast<nn::OpLayerImpl>(item.value()))
      by_name[item.key()] = p;
  auto module = [&](const std::string& name) {
    const auto it = by_name.find(name);
    if (it == by_name.end())
      throw std::logic_error("super-network: no module '" + name + "'");
    return nn::OpLayer(it->second);
  };
  for (size_t i = 0; i < net.positions.size(); ++i) {
    const auto& p = net.positions[i];
    SearchLayer l;
    l.position = i;
    l.name = p.name;
    l.width = p.out_channels;
    l.layer = module(p.name);
    l.summed = p.reader.empty();
    if (!l.summed)
      l.reader = module(p.reader);
    net.layers.push_back(std::move(l));
  }
  return net;
}

void add_l1_subgradient(SuperNet& net, double sparsity, bool reweight) {
  const auto w = l1_weights(net.candidates, reweight);
  torch::NoGradGuard no_grad;
  for (auto& l : net.layers) {
    auto& gamma = l.layer->bn()->weight;
    if (!gamma.grad().defined())
      gamma.mutable_grad() = torch::zeros_like(gamma);
    auto coef = torch::empty_like(gamma);
    for (int64_t n = 0; n < num(net); ++n)
      coef.narrow(0, n * l.width, l.width).fill_(sparsity * w[n]);
    gamma.mutable_grad().add_(coef * gamma.sign());
  }
}

void select(SuperNet& net, const std::vector<std::vector<int64_t>>& kept) {
  if (kept.size() != net.layers.size())
    throw std::invalid_argument("select: one index list per searched layer");
  for (size_t l = 0; l < kept.size(); ++l) {
    auto k = kept[l];
    std::sort(k.begin(), k.end());
    const auto idx = index_tensor(k);
    net.layers[l].layer->select_outputs(idx);
    if (!net.layers[l].summed)
      net.layers[l].reader->select_inputs(idx);
  }
}

void clear_selection(SuperNet& net) {
  for (auto& l : net.layers) {
    l.layer->select_outputs({});
    if (!l.summed)
      l.reader->select_inputs({});
  }
}

std::vector<std::vector<int64_t>>
select_random(SuperNet& net, std::mt19937_64& rng) {
  std::vector<std::vector<int64_t>> kept;
  for (const auto& l : net.layers) {
    if (l.summed) {
      std::uniform_int_distribution<int64_t> candidate(0, num(net) - 1);
      std::vector<int64_t> k;
      for (int64_t j = 0; j < l.width; ++j)
        k.push_back(candidate(rng) * l.width + j);
      std::sort(k.begin(), k.end());
      kept.push_back(std::move(k));
      continue;
    }
    std::vector<int64_t> all(num(net) * l.width);
    std::iota(all.begin(), all.end(), 0);
    // Partial Fisher-Yates: the first width entries are a uniform subset.
    for (int64_t i = 0; i < l.width; ++i) {
      std::uniform_int_distribution<int64_t> pick(i, int64_t(all.size()) - 1);
      std::swap(all[i], all[pick(rng)]);
    }
    all.resize(l.width);
    std::sort(all.begin(), all.end());
    kept.push_back(std::move(all));
  }
  select(net, kept);
  return kept;
}

namespace {

// The optimizer's per-parameter tensors of the shape of `p` (undefined where
// the optimizer keeps none), in a fixed order; empty when it holds no state
// for `p` yet. LibTorch keys the state by the parameter's TensorImpl address
// (torch/optim/serialize.h does the same).
std::vector<torch::Tensor>
optimizer_state(torch::optim::Optimizer& opt, const torch::Tensor& p) {
  const auto it =
      opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  if (it == opt.state().end())
    return {};
  auto* s = it->second.get();
  if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(s))
    return {sgd->momentum_buffer()};
  if (auto* a = dynamic_cast<torch::optim::AdamWParamState*>(s))
    return {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()};
  if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(s))
    return {a->exp_avg(), a->exp_avg_sq(), a->max_exp_avg_sq()};
  throw std::invalid_argument(
      "P search: cannot keep this optimizer's state off the dropped channels "
      "(SGD, Adam and AdamW are supported)");
}

std::vector<int64_t>
complement(const std::vector<int64_t>& kept, int64_t total) {
  std::vector<bool> in(size_t(total), false);
  for (auto i : kept)
    in.at(size_t(i)) = true;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < total; ++i)
    if (!in[size_t(i)])
      out.push_back(i);
  return out;
}

} // namespace

DroppedChannels::DroppedChannels(
    const SuperNet& net,
    const std::vector<std::vector<int64_t>>& kept,
    torch::optim::Optimizer& optimizer)
    : optimizer_(&optimizer) {
  if (kept.size() != net.layers.size())
    throw std::invalid_argument(
        "DroppedChannels: one index list per searched layer");
  torch::NoGradGuard no_grad;
  auto save = [&](const torch::Tensor& p,
                  int64_t dim,
                  const std::vector<int64_t>& idx) {
    if (idx.empty())
      return;
    Slice s;
    s.param = p;
    s.dim = dim;
    s.index = index_tensor(idx);
    s.value = p.index_select(dim, s.index);
    const auto state = optimizer_state(optimizer, p);
    s.had_state = !state.empty();
    for (const auto& t : state)
      s.state.push_back(
          t.defined() ? t.index_select(dim, s.index) : torch::Tensor());
    slices_.push_back(std::move(s));
  };
  for (size_t l = 0; l < kept.size(); ++l) {
    const auto& L = net.layers[l];
    const int64_t c = L.width;
    const auto dropped = complement(kept[l], num(net) * c);
    auto bn = L.layer.ptr()->bn();
    save(bn->weight, 0, dropped);
    save(bn->bias, 0, dropped);
    // Candidate n's weight holds the layer's channels [n*c, (n+1)*c).
    const auto& ws = L.layer->stages().back();
    for (size_t n = 0; n < ws.size(); ++n) {
      std::vector<int64_t> local;
      for (auto i : dropped)
        if (i / c == int64_t(n))
          local.push_back(i - int64_t(n) * c);
      save(ws[n], 0, local);
    }
    if (!L.summed)
      for (const auto& w : L.reader->stages().front())
        save(w, 1, dropped);
  }
}

void DroppedChannels::restore() {
  torch::NoGradGuard no_grad;
  for (auto& s : slices_) {
    s.param.index_copy_(s.dim, s.index, s.value);
    const auto state = optimizer_state(*optimizer_, s.param);
    for (size_t k = 0; k < state.size(); ++k) {
      if (!state[k].defined())
        continue;
      if (s.had_state && k < s.state.size() && s.state[k].defined())
        state[k].index_copy_(s.dim, s.index, s.state[k]);
      else
        state[k].index_fill_(s.dim, s.index, 0);
    }
  }
}

std::vector<std::vector<double>> importance(const SuperNet& net) {
  std::vector<std::vector<double>> out;
  for (const auto& l : net.layers) {
    const auto g = l.layer.ptr()
                       ->bn()
                       ->weight.detach()
                       .abs()
                       .to(torch::kDouble)
                       .contiguous();
    out.emplace_back(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  return out;
}

double CostModel::total(const std::vector<std::vector<int64_t>>& counts) const {
  double t = fixed;
  for (size_t l = 0; l < counts.size(); ++l)
    for (size_t n = 0; n < counts[l].size(); ++n)
      t += double(counts[l][n]) * cost[l][n];
  return t;
}

double CostModel::minimum(const std::vector<int64_t>& widths) const {
  double t = fixed;
  for (size_t l = 0; l < widths.size(); ++l)
    t += double(widths[l]) * *std::min_element(cost[l].begin(), cost[l].end());
  return t;
}

CostModel mac_cost_model(const SuperNet& net, std::vector<int64_t> input) {
  const auto report = net.model.cost(input);
  std::map<std::string, const models::LayerCost*> rows;
  for (const auto& r : report.layers)
    rows[r.name] = &r;
  auto row = [&](const std::string& name) -> const models::LayerCost& {
    const auto it = rows.find(name);
    if (it == rows.end())
      throw std::logic_error("cost model: no cost row for '" + name + "'");
    return *it->second;
  };
  int64_t full = 1;
  for (const auto& k : net.candidates)
    full = std::max({full, k.d, k.h, k.w});
  const double full_vol = double(full * full * full);

  CostModel m;
  m.unit = "MACs";
  double searched = 0, reference = 0;
  std::set<std::string> names;
  for (const auto& l : net.layers) {
    names.insert(l.name);
    const auto& r = row(l.name);
    const auto& o = r.output_shape;
    // Per output channel and tap of kernel volume, at the derived layer's
    // input width (a layer that reads a searched one reads N * C_in channels
    // in the super-network, C_in once derived).
    const double unit = double(o[0] * o[2] * o[3] * o[4]) *
                        double(net.positions[l.position].in_channels);
    std::vector<double> c;
    for (const auto& k : net.candidates)
      c.push_back(unit * double(k.volume()));
    m.cost.push_back(c);
    searched += double(r.macs);
    reference += unit * full_vol * double(l.width);
  }
  // Readers that are not searched themselves (the bottleneck's last 1x1x1)
  // are linear in their input channels: N * C_out -> C_out.
  double readers_saved = 0;
  for (const auto& l : net.layers)
    if (!l.summed && !names.count(net.positions[l.position].reader))
      readers_saved += double(row(net.positions[l.position].reader).macs) *
                       (1 - 1.0 / double(num(net)));
  m.fixed = double(report.total_macs()) - searched - readers_saved;
  m.reference = m.fixed + reference;
  return m;
}

std::string LatencyTable::json() const {
  nlohmann::json j;
  j["network"] = network;
  j["width"] = width;
  j["candidates"] = candidates_str(candidates);
  j["input_sizes"] = input_sizes;
  j["threads"] = threads;
  j["layers"] = layers;
  j["layer_ms"] = layer_ms;
  j["rest_ms"] = rest_ms;
  j["reference_ms"] = reference_ms;
  j["note"] = "layer_ms[l][n]: forward of layer l with all C_out channels of "
              "candidate n; per-channel cost is layer_ms / C_out";
  return j.dump(2) + "\n";
}

LatencyTable LatencyTable::parse(const std::string& text) {
  LatencyTable t;
  try {
    const auto j = nlohmann::json::parse(text);
    t.network = j.at("network").get<std::string>();
    t.width = j.value("width", int64_t(0));
    t.candidates = parse_candidates(j.at("candidates").get<std::string>());
    t.input_sizes = j.at("input_sizes").get<std::vector<int64_t>>();
    t.threads = j.value("threads", 0);
    t.layers = j.at("layers").get<std::vector<std::string>>();
    t.layer_ms = j.at("layer_ms").get<std::vector<std::vector<double>>>();
    t.rest_ms = j.at("rest_ms").get<double>();
    t.reference_ms = j.value("reference_ms", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("latency table: ") + e.what());
  }
  return t;
}

LatencyTable
measure_latency(const SuperNet& net, std::vector<int64_t> input, int repeats) {
  torch::NoGradGuard no_grad;
  LatencyTable t;
  t.network = net.args.network;
  t.width = net.args.width;
  t.candidates = net.candidates;
  t.input_sizes = input;
  t.threads = at::get_num_threads();
  auto& mutable_net = const_cast<SuperNet&>(net);
  const auto report = net.model.cost(input);
  std::map<std::string, std::vector<int64_t>> out_shape;
  for (const auto& r : report.layers)
    out_shape[r.name] = r.output_shape;
  double modelled_cheapest = 0, modelled_full = 0;
  size_t cheapest = 0;
  for (size_t n = 0; n < net.candidates.size(); ++n)
    if (net.candidates[n].volume() < net.candidates[cheapest].volume())
      cheapest = n;
  int64_t full = 1;
  for (const auto& k : net.candidates)
    full = std::max({full, k.d, k.h, k.w});
  for (const auto& l : net.layers) {
    const auto& o = l.layer->options;
    const auto os = out_shape.at(l.name);
    // The derived layer reads the position's nominal input width (in the
    // super-network a layer that reads a searched one reads N times more).
    const int64_t c_in = net.positions[l.position].in_channels;
    std::vector<int64_t> in = {os[0], c_in};
    for (int a = 0; a < 3; ++a)
      in.push_back(os[2 + a] * o.stride()[a]);
    const auto x = torch::randn(in);
    auto time = [&](SubKernel k) {
      nn::OpLayer m(nn::OpLayerOptions(c_in, nn::plain_conv(k, l.width))
                        .stride(o.stride()));
      m->eval();
      return median_ms([&] { m->forward(x); }, repeats);
    };
    std::vector<double> row;
    for (const auto& k : net.candidates)
      row.push_back(time(k));
    modelled_cheapest += row[cheapest];
    modelled_full += time({full, full, full});
    t.layers.push_back(l.name);
    t.layer_ms.push_back(row);
  }
  // The rest: the whole network with every layer at its cheapest candidate,
  // minus those layers as modelled.
  std::vector<std::vector<int64_t>> kept;
  for (const auto& l : net.layers) {
    std::vector<int64_t> k(l.width);
    std::iota(k.begin(), k.end(), int64_t(cheapest) * l.width);
    kept.push_back(k);
  }
  const bool was_training = net.model.module->is_training();
  net.model.module->eval();
  select(mutable_net, kept);
  const auto x = torch::randn(input);
  const double whole = median_ms([&] { net.model.forward(x); }, repeats);
  clear_selection(mutable_net);
  net.model.module->train(was_training);
  t.rest_ms = std::max(0.0, whole - modelled_cheapest);
  t.reference_ms = t.rest_ms + modelled_full;
  return t;
}

CostModel latency_cost_model(const SuperNet& net, const LatencyTable& t) {
  auto described = [](const std::string& network,
                      int64_t width,
                      const std::vector<SubKernel>& cands) {
    return network + (width > 0 ? " width " + std::to_string(width) : "") +
           " with candidates " + candidates_str(cands);
  };
  if (t.network != net.args.network || t.width != net.args.width ||
      candidates_str(t.candidates) != candidates_str(net.candidates) ||
      t.layers.size() != net.layers.size())
    throw std::invalid_argument(
        "latency table is for " + described(t.network, t.width, t.candidates) +
        ", not " + described(net.args.network, net.args.width, net.candidates) +
        " (run cakes profile with the search's --net, --width and "
        "--candidates)");
  CostModel m;
  m.unit = "ms";
  m.fixed = t.rest_ms;
  m.reference = t.reference_ms;
  for (size_t l = 0; l < net.layers.size(); ++l) {
    if (t.layers[l] != net.layers[l].name ||
        t.layer_ms[l].size() != net.candidates.size())
      throw std::invalid_argument(
          "latency table: layer " + std::to_string(l) + " is '" + t.layers[l] +
          "', expected '" + net.layers[l].name + "'");
    std::vector<double> c;
    for (double ms : t.layer_ms[l])
      c.push_back(ms / double(net.layers[l].width));
    m.cost.push_back(c);
  }
  return m;
}

namespace {

// Per layer the top C_out of importance - lambda * cost (ties: cheaper, then
// lower index).
Derivation pick(
    const SuperNet& net,
    const std::vector<std::vector<double>>& imp,
    const CostModel& cm,
    double lambda) {
  Derivation d;
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const int64_t c = net.layers[l].width, total = num(net) * c;
    if (int64_t(imp.at(l).size()) != total)
      throw std::invalid_argument(
          "derive: layer " + net.layers[l].name + " has " +
          std::to_string(imp[l].size()) + " importances, expected " +
          std::to_string(total));
    auto cost = [&](int64_t i) { return cm.cost[l][i / c]; };
    auto score = [&](int64_t i) { return imp[l][i] - lambda * cost(i); };
    auto better = [&](int64_t a, int64_t b) {
      const double sa = score(a), sb = score(b);
      if (sa != sb)
        return sa > sb;
      if (cost(a) != cost(b))
        return cost(a) < cost(b);
      return a < b;
    };
    std::vector<int64_t> idx;
    if (net.layers[l].summed) {
      // One candidate per output index j: the best of {n*c + j}.
      for (int64_t j = 0; j < c; ++j) {
        int64_t best = j;
        for (int64_t n = 1; n < num(net); ++n)
          if (better(n * c + j, best))
            best = n * c + j;
        idx.push_back(best);
      }
    } else {
      idx.resize(size_t(total));
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), better);
      idx.resize(size_t(c));
    }
    std::sort(idx.begin(), idx.end());
    std::vector<int64_t> counts(num(net), 0);
    for (auto i : idx) {
      ++counts[i / c];
      d.importance += imp[l][i];
    }
    d.kept.push_back(idx);
    d.counts.push_back(counts);
  }
  d.cost = cm.total(d.counts);
  return d;
}

} // namespace

Derivation derive(
    const SuperNet& net,
    const std::vector<std::vector<double>>& imp,
    const CostModel& cm,
    std::optional<double> budget) {
  if (imp.size() != net.layers.size() || cm.cost.size() != net.layers.size())
    throw std::invalid_argument("derive: one entry per searched layer needed");
  Derivation best = pick(net, imp, cm, 0);
  if (budget && best.cost > *budget) {
    std::vector<int64_t> widths;
    for (const auto& l : net.layers)
      widths.push_back(l.width);
    const double lowest = cm.minimum(widths);
    if (*budget < lowest) {
      std::ostringstream m;
      m << "budget " << *budget << " " << cm.unit
        << " is infeasible: the cheapest derivation (every channel on the "
           "cheapest candidate) costs "
        << lowest << " " << cm.unit;
      throw std::invalid_argument(m.str());
    }
    // Costs scaled so that lambda's range is independent of the unit.
    double max_cost = 0;
    for (const auto& c : cm.cost)
      for (double v : c)
        max_cost = std::max(max_cost, v);
    CostModel scaled = cm;
    for (auto& c : scaled.cost)
      for (auto& v : c)
        v /= max_cost;
    double lo = 1e-9, hi = 1e12;
    best = pick(net, imp, scaled, hi);
    for (int it = 0; it < 100; ++it) {
      const double mid = std::sqrt(lo * hi);
      auto d = pick(net, imp, scaled, mid);
      if (cm.total(d.counts) <= *budget) {
        hi = mid;
        best = d;
      } else {
        lo = mid;
      }
    }
    best.cost = cm.total(best.counts);
  }
  best.configs.resize(net.positions.size());
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const auto& L = net.layers[l];
    std::vector<KernelGroup> groups;
    for (size_t n = 0; n < net.candidates.size(); ++n)
      groups.push_back({net.candidates[n], best.counts[l][n]});
    // The derived layer's groups are contiguous, in the order of the kept
    // global indices (candidate-major); a summed layer's kept channel n*c + j
    // belongs at output j.
    std::vector<int64_t> output_index;
    if (L.summed)
      for (auto i : best.kept[l])
        output_index.push_back(i % L.width);
    best.configs[L.position] = Config(groups, output_index);
  }
  return best;
}

std::string config_json(const SuperNet& net, const Derivation& d) {
  std::string s = "{\n  \"network\": \"" + net.args.network +
                  "\",\n  \"op\": \"cakes\",\n  \"blocks\": [\n";
  for (size_t i = 0; i < d.configs.size(); ++i)
    s += "    " + d.configs[i].json() +
         (i + 1 < d.configs.size() ? ",\n" : "\n");
  return s + "  ]\n}\n";
}

models::Model inherit(const SuperNet& net, const Derivation& d) {
  models::ModelArgs a = net.args;
  a.op = OpSpec{"cakes", d.configs, net.candidates};
  auto m = models::make_model(a);
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> src;
  for (const auto& kv : net.model.module->named_parameters(true))
    src[kv.key()] = kv.value();
  for (const auto& kv : net.model.module->named_buffers(true))
    src[kv.key()] = kv.value();
  std::map<std::string, size_t> layer_of, reader_of;
  for (size_t l = 0; l < net.layers.size(); ++l) {
    layer_of[net.layers[l].name] = l;
    if (!net.layers[l].summed)
      reader_of[net.positions[net.layers[l].position].reader] = l;
  }
  auto copy_into = [&](const std::string& name, torch::Tensor dst) {
    auto t = src.at(name);
    // Module path = name up to the last component (".bn.x" for BatchNorm).
    std::string module = name.substr(0, name.rfind('.'));
    std::string leaf = name.substr(name.rfind('.') + 1);
    const bool in_bn =
        module.size() >= 3 && module.compare(module.size() - 3, 3, ".bn") == 0;
    if (in_bn)
      module = module.substr(0, module.size() - 3);
    if (const auto it = layer_of.find(module); it != layer_of.end()) {
      const size_t l = it->second;
      const int64_t c = net.layers[l].width;
      const auto& kept = d.kept[l];
      if (in_bn && leaf != "num_batches_tracked") {
        t = t.index_select(0, index_tensor(kept));
      } else if (leaf.rfind("weight_", 0) == 0) {
        const int n = candidate_index(net, leaf.substr(7));
        std::vector<int64_t> local;
        for (auto i : kept)
          if (i / c == n)
            local.push_back(i - n * c);
        t = t.index_select(0, index_tensor(local));
      }
    }
    if (const auto it = reader_of.find(module);
        it != reader_of.end() && !in_bn &&
        (leaf.rfind("weight_", 0) == 0 || leaf.rfind("stage0_weight_", 0) == 0))
      t = t.index_select(1, index_tensor(d.kept[it->second]));
    if (t.sizes() != dst.sizes())
      throw std::logic_error(
          "inherit: '" + name + "' does not fit the derived network");
    dst.copy_(t);
  };
  for (auto& kv : m.module->named_parameters(true))
    copy_into(kv.key(), kv.value());
  for (auto& kv : m.module->named_buffers(true))
    copy_into(kv.key(), kv.value());
  return m;
}

std::string search_network_string(const SearchMeta& meta) {
  nlohmann::json j;
  j["network"] = meta.network;
  j["candidates"] = candidates_str(meta.candidates);
  j["num_classes"] = meta.num_classes;
  j["in_channels"] = meta.in_channels;
  j["width"] = meta.width;
  j["mode"] = meta.mode;
  j["input_sizes"] = meta.input_sizes;
  return kSearchPrefix + j.dump();
}

SearchMeta read_search_meta(const std::string& path) {
  const auto cm = train::read_checkpoint_meta(path);
  if (cm.network.rfind(kSearchPrefix, 0) != 0)
    throw std::runtime_error(
        path + " is not a search checkpoint (it was written for network '" +
        cm.network + "'; use the search.ckpt written by cakes search)");
  SearchMeta m;
  try {
    const auto j = nlohmann::json::parse(
        cm.network.substr(std::string(kSearchPrefix).size()));
    m.network = j.at("network").get<std::string>();
    m.candidates = parse_candidates(j.at("candidates").get<std::string>());
    m.num_classes = j.at("num_classes").get<int64_t>();
    m.in_channels = j.at("in_channels").get<int64_t>();
    m.mode = j.at("mode").get<std::string>();
    m.input_sizes = j.at("input_sizes").get<std::vector<int64_t>>();
    m.width = j.value("width", int64_t(0));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        path + ": damaged search checkpoint metadata (" + e.what() + ")");
  }
  return m;
}

SuperNet load_search_checkpoint(const std::string& path, SearchMeta* out) {
  const auto meta = read_search_meta(path);
  models::ModelArgs a;
  a.network = meta.network;
  a.num_classes = meta.num_classes;
  a.in_channels = meta.in_channels;
  a.width = meta.width;
  auto net = build_supernet(a, meta.candidates);
  train::load_checkpoint_weights(
      path, *net.model.module, search_network_string(meta));
  if (out)
    *out = meta;
  return net;
}

} // namespace cakes::search

namespace cakes::search {

Derivation derive_by_volume(const SuperNet& net) {
  CostModel cm;
  cm.unit = "kernel volume";
  for (size_t l = 0; l < net.layers.size(); ++l) {
    std::vector<double> c;
    for (const auto& k : net.candidates)
      c.push_back(double(k.volume()));
    cm.cost.push_back(c);
  }
  return derive(net, importance(net), cm);
}

std::vector<train::EpochSummary> run_search(
    SuperNet& net,
    const SearchMeta& meta,
    train::Loader& loader,
    train::LossFn loss,
    SearchOptions o,
    std::function<std::map<std::string, double>(SuperNet&)> validate) {
  if (o.mode != "C" && o.mode != "P")
    throw std::invalid_argument(
        "unknown search mode '" + o.mode + "' (expected C or P)");
  const bool p_mode = o.mode == "P";
  // P's state across the trainer's hooks: the step's subset, what it must
  // not change, and the optimizer (known once the trainer exists).
  struct PState {
    std::mt19937_64 rng;
    std::vector<std::vector<int64_t>> kept;
    std::optional<DroppedChannels> dropped;
    torch::optim::Optimizer* optimizer = nullptr;
  };
  auto ps = std::make_shared<PState>();
  ps->rng.seed(o.seed);
  train::Model m;
  m.module = net.model.module;
  m.network = search_network_string(meta);
  SuperNet* np = &net;
  m.forward = [np, p_mode, ps](const at::Tensor& x) {
    // P: a fresh subset of exactly C_out channels per layer for every step.
    if (p_mode && np->model.module->is_training())
      ps->kept = select_random(*np, ps->rng);
    return np->model.forward(x);
  };
  if (p_mode) {
    o.trainer.after_backward = [np, ps](torch::nn::Module&) {
      ps->dropped.emplace(*np, ps->kept, *ps->optimizer);
    };
    o.trainer.after_step = [ps](torch::nn::Module&) {
      ps->dropped->restore();
      ps->dropped.reset();
    };
  } else {
    const double s = o.sparsity;
    const bool rw = o.reweight;
    o.trainer.after_backward = [np, s, rw](torch::nn::Module&) {
      add_l1_subgradient(*np, s, rw);
    };
  }
  if (validate)
    o.trainer.validate = [np, validate](int64_t) {
      select(*np, derive_by_volume(*np).kept);
      auto r = validate(*np);
      clear_selection(*np);
      return r;
    };
  train::Trainer trainer(m, std::move(loss), o.trainer);
  ps->optimizer = &trainer.optimizer();
  auto out = trainer.fit(loader);
  clear_selection(net);
  return out;
}

} // namespace cakes::search
