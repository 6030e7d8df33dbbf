#include "cakes/nn/op_spec.h"

#include <map>
#include <mutex>
#include <stdexcept>

namespace cakes {
namespace {

std::map<std::string, OpBuilder>& registry() {
  static std::map<std::string, OpBuilder> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

// Operations whose plan depends only on the position's shape.
OpBuilder fixed(std::function<LayerPlan(const Position&)> plan) {
  return [plan](const OpSpec& spec, const std::vector<Position>&) -> OpFactory {
    if (!spec.configs.empty())
      throw std::invalid_argument(
          "operation '" + spec.op +
          "' takes no per-block configurations (got " +
          std::to_string(spec.configs.size()) + "); use --op cakes");
    return [plan](size_t, const Position& p) { return plan(p); };
  };
}

OpFactory
build_cakes(const OpSpec& spec, const std::vector<Position>& positions) {
  if (spec.configs.empty()) {
    const auto cands =
        spec.candidates.empty() ? video_candidates() : spec.candidates;
    return [cands](size_t, const Position& p) {
      return LayerPlan{even_split(cands, p.out_channels)};
    };
  }
  if (spec.configs.size() != positions.size())
    throw std::invalid_argument(
        "cakes: " + std::to_string(spec.configs.size()) +
        " block configurations given but the network has " +
        std::to_string(positions.size()) + " CAKES positions");
  for (size_t i = 0; i < positions.size(); ++i) {
    const auto& c = spec.configs[i];
    if (c.out_channels() != positions[i].out_channels)
      throw std::invalid_argument(
          "cakes: block " + std::to_string(i) + " (" + positions[i].name +
          "): configuration '" + c.str() + "' has " +
          std::to_string(c.out_channels()) + " channels, the block width is " +
          std::to_string(positions[i].out_channels));
  }
  const auto configs = spec.configs;
  return [configs](size_t i, const Position& p) {
    if (i >= configs.size())
      throw std::invalid_argument(
          "cakes: no configuration for position " + std::to_string(i) + " (" +
          p.name + ")");
    return LayerPlan{configs[i]};
  };
}

bool register_builtins() {
  auto& r = registry();
  r["conv3d"] = fixed([](const Position& p) {
    return LayerPlan{Config::uniform({3, 3, 3}, p.out_channels)};
  });
  r["conv2d"] = fixed([](const Position& p) {
    return LayerPlan{Config::uniform({1, 3, 3}, p.out_channels)};
  });
  // docs/CAKES.md §2: 1x3x3 C_in -> C_in, then 3x1x1 C_in -> C_out, one BN +
  // ReLU.
  r["p3d"] = fixed([](const Position& p) {
    return LayerPlan{
        Config::uniform({1, 3, 3}, p.in_channels),
        Config::uniform({3, 1, 1}, p.out_channels)};
  });
  r["cakes"] = build_cakes;
  return true;
}

std::map<std::string, OpBuilder>& builtins() {
  static const bool once = register_builtins();
  (void)once;
  return registry();
}

} // namespace

OpFactory
make_op_factory(const OpSpec& spec, const std::vector<Position>& positions) {
  OpBuilder builder;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto& r = builtins();
    auto it = r.find(spec.op);
    if (it == r.end()) {
      std::string known;
      for (const auto& kv : r)
        known += (known.empty() ? "" : ", ") + kv.first;
      throw std::invalid_argument(
          "unknown operation '" + spec.op + "' (known: " + known + ")");
    }
    builder = it->second;
  }
  return builder(spec, positions);
}

void register_op(const std::string& name, OpBuilder builder) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  builtins()[name] = std::move(builder);
}

std::vector<std::string> registered_ops() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (const auto& kv : builtins())
    names.push_back(kv.first);
  return names;
}

Config even_split(const std::vector<SubKernel>& kernels, int64_t channels) {
  if (kernels.empty())
    throw std::invalid_argument("even_split: no sub-kernels");
  std::vector<KernelGroup> groups;
  const int64_t n = static_cast<int64_t>(kernels.size());
  for (int64_t i = 0; i < n; ++i)
    groups.push_back({kernels[i], channels / n + (i < channels % n ? 1 : 0)});
  return Config(std::move(groups));
}

std::vector<SubKernel> volumetric_candidates() {
  return {
      {3, 3, 3},
      {1, 3, 3},
      {3, 1, 3},
      {3, 3, 1},
      {3, 1, 1},
      {1, 3, 1},
      {1, 1, 3}};
}

std::vector<SubKernel> video_candidates() {
  return {{3, 3, 3}, {1, 3, 3}, {3, 1, 1}};
}

} // namespace cakes
