#include "cakes/nn/config.h"

#include "cakes/util/messages.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>

namespace cakes {
namespace {

// Bounds far above any real layer that keep every count, sum and product of
// counts (channels x kernel volume x input channels x positions) well inside
// 64 bits, so nothing downstream overflows on a hostile configuration.
constexpr int64_t kMaxExtent = 255;
constexpr int64_t kMaxChannels = int64_t(1) << 24;

// Outside text quoted in a message: one short line.
std::string quote_input(const std::string& text) {
  return "'" + util::one_line(text, 80) + "'";
}

// A decimal string of digits only, or -1 when it does not fit 18 digits
// (every limit here is far below).
int64_t digits_value(const std::string& s) {
  if (s.empty() || s.size() > 18 ||
      s.find_first_not_of("0123456789") != std::string::npos)
    return -1;
  return std::stoll(s);
}

int64_t parse_extent(const std::string& s, const std::string& whole) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument(
        "bad sub-kernel " + quote_input(whole) +
        ": expected DxHxW such as 1x3x3");
  const int64_t v = digits_value(s);
  if (v < 0 || v > kMaxExtent)
    throw std::invalid_argument(
        "bad sub-kernel " + quote_input(whole) + ": extent " +
        util::one_line(s, 24) + " exceeds the limit of " +
        std::to_string(kMaxExtent));
  if (v < 1 || v % 2 == 0)
    throw std::invalid_argument(
        "bad sub-kernel " + quote_input(whole) + ": extent " + s +
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
        "bad sub-kernel " + quote_input(t) + ": expected DxHxW such as 1x3x3");
  SubKernel k;
  k.d = parse_extent(t.substr(0, x1), t);
  k.h = parse_extent(t.substr(x1 + 1, x2 - x1 - 1), t);
  k.w = parse_extent(t.substr(x2 + 1), t);
  return k;
}

std::string SubKernel::str() const {
  return std::to_string(d) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

std::string kernels_str(const std::vector<SubKernel>& kernels) {
  std::string s;
  for (const auto& k : kernels)
    s += (s.empty() ? "" : ",") + k.str();
  return s;
}

Config::Config(
    std::vector<KernelGroup> groups, std::vector<int64_t> output_index)
    : groups_(std::move(groups)), output_index_(std::move(output_index)) {
  std::set<std::string> seen;
  int64_t total = 0;
  for (const auto& g : groups_) {
    if (g.channels < 0)
      throw std::invalid_argument(
          "bad configuration: sub-kernel " + g.kernel.str() + " has " +
          std::to_string(g.channels) + " channels");
    for (int64_t e : {g.kernel.d, g.kernel.h, g.kernel.w})
      if (e < 1 || e > kMaxExtent)
        throw std::invalid_argument(
            "bad configuration: sub-kernel extent " + std::to_string(e) +
            " is outside 1.." + std::to_string(kMaxExtent));
    total += std::min(g.channels, kMaxChannels + 1);
    if (g.channels > kMaxChannels || total > kMaxChannels)
      throw std::invalid_argument(
          "bad configuration: more than " + std::to_string(kMaxChannels) +
          " channels");
    if (!seen.insert(g.kernel.str()).second)
      throw std::invalid_argument(
          "bad configuration: sub-kernel " + g.kernel.str() +
          " is listed twice");
  }
  if (output_index_.empty())
    return;
  const int64_t n = conv_channels();
  if (int64_t(output_index_.size()) != n)
    throw std::invalid_argument(
        "bad configuration: output_index has " +
        std::to_string(output_index_.size()) + " entries for " +
        std::to_string(n) + " channels");
  std::vector<bool> hit(size_t(n), false);
  for (auto o : output_index_) {
    if (o < 0 || o >= n)
      throw std::invalid_argument(
          "bad configuration: output_index entry " + std::to_string(o) +
          " is outside 0.." + std::to_string(n - 1));
    if (hit[size_t(o)])
      throw std::invalid_argument(
          "bad configuration: output channel " + std::to_string(o) +
          " appears twice in output_index (it must be a permutation)");
    hit[size_t(o)] = true;
  }
  // The identity is the default; store it as such so that equal layers
  // compare and print equal.
  bool identity = true;
  for (int64_t i = 0; identity && i < n; ++i)
    identity = output_index_[size_t(i)] == i;
  if (identity)
    output_index_.clear();
}

Config Config::uniform(SubKernel kernel, int64_t channels) {
  return Config({{kernel, channels}});
}

namespace {

const char* const kOutputIndex = "output_index";

std::vector<int64_t>
parse_index_list(const std::string& list, const std::string& whole) {
  std::vector<int64_t> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    const int64_t v = digits_value(item);
    if (v < 0)
      throw std::invalid_argument(
          "bad configuration " + quote_input(whole) + ": output_index entry " +
          quote_input(item) +
          " is not a non-negative integer of at most 18 digits");
    out.push_back(v);
  }
  return out;
}

// A JSON integer as int64_t; one above INT64_MAX is reported, not wrapped.
bool json_int64(const nlohmann::ordered_json& v, int64_t& out) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > uint64_t(INT64_MAX))
      return false;
    out = static_cast<int64_t>(u);
    return true;
  }
  if (!v.is_number_integer())
    return false;
  out = v.get<int64_t>();
  return true;
}

} // namespace

Config Config::parse(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty())
    throw std::invalid_argument("bad configuration: empty text");
  std::vector<KernelGroup> groups;
  std::vector<int64_t> output_index;
  if (t.front() == '{') {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(t);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(
          "bad configuration JSON " + quote_input(t) + ": " +
          util::one_line(e.what()));
    }
    if (!j.is_object())
      throw std::invalid_argument(
          "bad configuration JSON " + quote_input(t) + ": expected an object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == kOutputIndex) {
        const auto& v = it.value();
        bool ok = v.is_array();
        for (size_t i = 0; ok && i < v.size(); ++i) {
          int64_t o = 0;
          ok = json_int64(v[i], o);
          output_index.push_back(o);
        }
        if (!ok)
          throw std::invalid_argument(
              "bad configuration JSON: output_index must be an array of "
              "integers, got " +
              util::describe_json(v));
        continue;
      }
      int64_t channels = 0;
      if (!json_int64(it.value(), channels))
        throw std::invalid_argument(
            "bad configuration JSON: channels of " + quote_input(it.key()) +
            " must be an integer, got " + util::describe_json(it.value()));
      groups.push_back({SubKernel::parse(it.key()), channels});
    }
  } else {
    std::string groups_text = t;
    const auto semi = t.find(';');
    if (semi != std::string::npos) {
      const std::string rest = trim(t.substr(semi + 1));
      const std::string key = std::string(kOutputIndex) + "=";
      if (rest.rfind(key, 0) != 0)
        throw std::invalid_argument(
            "bad configuration " + quote_input(t) + ": expected '" + key +
            "i,j,...' after ';'");
      output_index = parse_index_list(rest.substr(key.size()), t);
      groups_text = t.substr(0, semi);
    }
    std::stringstream ss(groups_text);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = trim(item);
      const auto colon = item.find(':');
      if (colon == std::string::npos)
        throw std::invalid_argument(
            "bad configuration " + quote_input(t) + ": item " +
            quote_input(item) + " is not of the form DxHxW:channels");
      const std::string count = trim(item.substr(colon + 1));
      const int64_t channels = digits_value(count);
      if (channels < 0)
        throw std::invalid_argument(
            "bad configuration " + quote_input(t) + ": channel count " +
            quote_input(count) + " of " + quote_input(item) +
            " is not a non-negative integer of at most 18 digits");
      groups.push_back({SubKernel::parse(item.substr(0, colon)), channels});
    }
  }
  if (groups.empty())
    throw std::invalid_argument(
        "bad configuration " + quote_input(t) + ": no groups");
  return Config(std::move(groups), std::move(output_index));
}

std::string Config::str() const {
  std::string s;
  for (const auto& g : groups_) {
    if (!s.empty())
      s += ",";
    s += g.kernel.str() + ":" + std::to_string(g.channels);
  }
  if (!output_index_.empty()) {
    s += std::string(";") + kOutputIndex + "=";
    for (size_t i = 0; i < output_index_.size(); ++i)
      s += (i ? "," : "") + std::to_string(output_index_[i]);
  }
  return s;
}

std::string Config::json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& g : groups_)
    j[g.kernel.str()] = g.channels;
  if (!output_index_.empty())
    j[kOutputIndex] = output_index_;
  return j.dump();
}

int64_t Config::conv_channels() const {
  int64_t c = 0;
  for (const auto& g : groups_)
    c += g.channels;
  return c;
}

int64_t Config::out_channels() const {
  return conv_channels();
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
  return a.output_index_ == b.output_index_;
}

} // namespace cakes
