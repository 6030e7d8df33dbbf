#include "cakes/nn/config.h"

#include <nlohmann/json.hpp>

#include <set>
#include <sstream>
#include <stdexcept>

namespace cakes {
namespace {

int64_t parse_extent(const std::string& s, const std::string& whole) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument(
        "bad sub-kernel '" + whole + "': expected DxHxW such as 1x3x3");
  const int64_t v = std::stoll(s);
  if (v < 1 || v % 2 == 0)
    throw std::invalid_argument(
        "bad sub-kernel '" + whole + "': extent " + s +
        " must be 1 or an odd number");
  return v;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos)
    return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

} // namespace

SubKernel SubKernel::parse(const std::string& text) {
  const std::string t = trim(text);
  const auto x1 = t.find('x');
  const auto x2 = x1 == std::string::npos ? x1 : t.find('x', x1 + 1);
  if (x1 == std::string::npos || x2 == std::string::npos ||
      t.find('x', x2 + 1) != std::string::npos)
    throw std::invalid_argument(
        "bad sub-kernel '" + t + "': expected DxHxW such as 1x3x3");
  SubKernel k;
  k.d = parse_extent(t.substr(0, x1), t);
  k.h = parse_extent(t.substr(x1 + 1, x2 - x1 - 1), t);
  k.w = parse_extent(t.substr(x2 + 1), t);
  return k;
}

std::string SubKernel::str() const {
  return std::to_string(d) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

Config::Config(std::vector<KernelGroup> groups) : groups_(std::move(groups)) {
  std::set<std::string> seen;
  for (const auto& g : groups_) {
    if (g.channels < 0)
      throw std::invalid_argument(
          "bad configuration: sub-kernel " + g.kernel.str() + " has " +
          std::to_string(g.channels) + " channels");
    if (!seen.insert(g.kernel.str()).second)
      throw std::invalid_argument(
          "bad configuration: sub-kernel " + g.kernel.str() +
          " is listed twice");
  }
}

Config Config::uniform(SubKernel kernel, int64_t channels) {
  return Config({{kernel, channels}});
}

Config Config::parse(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty())
    throw std::invalid_argument("bad configuration: empty text");
  std::vector<KernelGroup> groups;
  if (t.front() == '{') {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(t);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(
          "bad configuration JSON '" + t + "': " + e.what());
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_number_integer())
        throw std::invalid_argument(
            "bad configuration JSON: channels of '" + it.key() +
            "' must be an integer, got " + it.value().dump());
      groups.push_back({SubKernel::parse(it.key()), it.value().get<int64_t>()});
    }
  } else {
    std::stringstream ss(t);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      const auto colon = item.find(':');
      if (colon == std::string::npos)
        throw std::invalid_argument(
            "bad configuration '" + t + "': item '" + item +
            "' is not of the form DxHxW:channels");
      const std::string count = trim(item.substr(colon + 1));
      if (count.empty() ||
          count.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument(
            "bad configuration '" + t + "': channel count '" + count +
            "' of '" + item + "' is not a non-negative integer");
      groups.push_back(
          {SubKernel::parse(item.substr(0, colon)), std::stoll(count)});
    }
  }
  if (groups.empty())
    throw std::invalid_argument("bad configuration '" + t + "': no groups");
  return Config(std::move(groups));
}

std::string Config::str() const {
  std::string s;
  for (const auto& g : groups_) {
    if (!s.empty())
      s += ",";
    s += g.kernel.str() + ":" + std::to_string(g.channels);
  }
  return s;
}

std::string Config::json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& g : groups_)
    j[g.kernel.str()] = g.channels;
  return j.dump();
}

int64_t Config::out_channels() const {
  int64_t c = 0;
  for (const auto& g : groups_)
    c += g.channels;
  return c;
}

int64_t Config::taps_times_channels() const {
  int64_t c = 0;
  for (const auto& g : groups_)
    c += g.channels * g.kernel.volume();
  return c;
}

bool operator==(const Config& a, const Config& b) {
  if (a.groups_.size() != b.groups_.size())
    return false;
  for (size_t i = 0; i < a.groups_.size(); ++i)
    if (a.groups_[i].kernel != b.groups_[i].kernel ||
        a.groups_[i].channels != b.groups_[i].channels)
      return false;
  return true;
}

} // namespace cakes
