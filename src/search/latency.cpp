#include "cakes/search/latency.h"

#include "cakes/search/candidates.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <numeric>
#include <stdexcept>

namespace cakes::search {
namespace {

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

std::string LatencyTable::json() const {
  nlohmann::json j;
  j["network"] = network;
  j["width"] = width;
  j["candidates"] = kernels_str(candidates);
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
measure_latency(SuperNet& net, std::vector<int64_t> input, int repeats) {
  torch::NoGradGuard no_grad;
  LatencyTable t;
  t.network = net.model.spec.network;
  t.width = net.model.spec.canonical().width;
  t.candidates = net.candidates;
  t.input_sizes = input;
  t.threads = at::get_num_threads();
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
  double whole = 0;
  {
    SelectionGuard restore(net);
    select(net, kept);
    const auto x = torch::randn(input);
    whole = median_ms([&] { net.model.forward(x); }, repeats);
  }
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
           " with candidates " + kernels_str(cands);
  };
  const auto spec = net.model.spec.canonical();
  if (t.network != spec.network || t.width != spec.width ||
      kernels_str(t.candidates) != kernels_str(net.candidates) ||
      t.layers.size() != net.layers.size())
    throw std::invalid_argument(
        "latency table is for " + described(t.network, t.width, t.candidates) +
        ", not " + described(spec.network, spec.width, net.candidates) +
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

} // namespace cakes::search
