#include "cakes/models/network_spec.h"

#include "cakes/models/zoo.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

namespace cakes::models {
namespace {

std::string configs_str(const std::vector<Config>& cs) {
  std::string s;
  for (const auto& c : cs)
    s += (s.empty() ? "" : " ") + c.str();
  return s;
}

} // namespace

bool NetworkSpec::video() const {
  return network_info(network).video;
}

NetworkSpec NetworkSpec::canonical() const {
  NetworkSpec c = *this;
  const NetworkInfo* info = find_network(network);
  if (!info) // a module of the caller's, named by `network`
    return c;
  if (c.width <= 0)
    c.width = info->default_width;
  if (c.op.candidates.empty())
    c.op.candidates = info->candidates;
  if (info->video)
    c.in_channels = 3;
  else if (c.in_channels <= 0)
    c.in_channels = 1;
  return c;
}

std::string NetworkSpec::to_json() const {
  nlohmann::ordered_json j;
  j["network"] = network;
  j["width"] = width;
  j["num_classes"] = num_classes;
  j["in_channels"] = in_channels;
  j["op"] = op.op;
  j["candidates"] = nlohmann::ordered_json::array();
  for (const auto& k : op.candidates)
    j["candidates"].push_back(k.str());
  if (!op.configs.empty()) {
    j["configs"] = nlohmann::ordered_json::array();
    for (const auto& c : op.configs)
      j["configs"].push_back(nlohmann::ordered_json::parse(c.json()));
  }
  return j.dump();
}

NetworkSpec NetworkSpec::from_json(const std::string& text) {
  NetworkSpec s;
  try {
    const auto j = nlohmann::ordered_json::parse(text);
    s.network = j.at("network").get<std::string>();
    s.width = j.value("width", int64_t(0));
    s.num_classes = j.at("num_classes").get<int64_t>();
    s.in_channels = j.value("in_channels", int64_t(0));
    s.op.op = j.at("op").get<std::string>();
    for (const auto& k : j.value("candidates", nlohmann::ordered_json::array()))
      s.op.candidates.push_back(SubKernel::parse(k.get<std::string>()));
    if (j.contains("configs"))
      for (const auto& c : j.at("configs"))
        s.op.configs.push_back(Config::parse(c.dump()));
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(
        std::string("bad network description: ") + e.what());
  }
  return s;
}

std::string NetworkSpec::describe() const {
  std::string s = network;
  if (width > 0)
    s += " width " + std::to_string(width);
  s += ", " + std::to_string(num_classes) + " classes";
  const NetworkInfo* info = find_network(network);
  if (info && !info->video)
    s += ", " + std::to_string(in_channels) + " input channels";
  s += ", op " + op.op;
  if (!op.configs.empty())
    s += " [" + configs_str(op.configs) + "]";
  return s;
}

std::string difference(const NetworkSpec& saved, const NetworkSpec& wanted) {
  const NetworkSpec a = saved.canonical(), b = wanted.canonical();
  auto num = [](int64_t v) { return std::to_string(v); };
  if (a.network != b.network)
    return "network " + a.network + " vs " + b.network;
  if (a.width != b.width)
    return "width " + num(a.width) + " vs " + num(b.width);
  if (a.num_classes != b.num_classes)
    return num(a.num_classes) + " vs " + num(b.num_classes) + " classes";
  if (a.in_channels != b.in_channels)
    return num(a.in_channels) + " vs " + num(b.in_channels) + " input channels";
  if (a.op.op != b.op.op)
    return "operation " + a.op.op + " vs " + b.op.op;
  if (kernels_str(a.op.candidates) != kernels_str(b.op.candidates))
    return "candidates " + kernels_str(a.op.candidates) + " vs " +
           kernels_str(b.op.candidates);
  if (a.op.configs.size() != b.op.configs.size())
    return num(int64_t(a.op.configs.size())) + " vs " +
           num(int64_t(b.op.configs.size())) + " position configurations";
  for (size_t i = 0; i < a.op.configs.size(); ++i)
    if (!(a.op.configs[i] == b.op.configs[i]))
      return "configuration of position " + num(int64_t(i)) + " " +
             a.op.configs[i].str() + " vs " + b.op.configs[i].str();
  return "";
}

bool operator==(const NetworkSpec& a, const NetworkSpec& b) {
  return difference(a, b).empty();
}

bool operator!=(const NetworkSpec& a, const NetworkSpec& b) {
  return !(a == b);
}

NetworkSpec with_config(
    NetworkSpec spec,
    const NetworkConfig& config,
    const std::string& what,
    bool op_given) {
  if (!config.network.empty() && config.network != spec.network)
    throw std::invalid_argument(
        what + " is for " + config.network + ", not " + spec.network);
  if (op_given && spec.op.op != config.op)
    throw std::invalid_argument(
        what + " configures --op " + config.op + ", not " + spec.op.op);
  spec.op.op = config.op;
  spec.op.configs = config.blocks;
  return spec;
}

} // namespace cakes::models
