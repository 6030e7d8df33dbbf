#include "cakes/models/network_config.h"

#include "cakes/util/messages.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cakes::models {
namespace {

// A copy of configs/i3d_resnet50_ssv1.json so that the library needs no file at
// run time; tests/models checks that the two stay identical.
const char kPresets[] = R"json(
{
 "_about": "Per-block channel splits of the 3x3 convolution in the 16 bottleneck blocks (3+4+6+3) of an I3D ResNet-50, as published with the CAKES paper for Something-Something V1. Keys are sub-kernel shapes TxHxW. _P = performance priority search, _C = cost priority search. Widths per block: 64 x3, 128 x4, 256 x6, 512 x3.",
 "network": "i3d_resnet50",
 "presets": {
  "CAKES12D_P": [
   {"1x3x3": 32, "3x1x1": 32},
   {"1x3x3": 42, "3x1x1": 22},
   {"1x3x3": 34, "3x1x1": 30},
   {"1x3x3": 90, "3x1x1": 38},
   {"1x3x3": 67, "3x1x1": 61},
   {"1x3x3": 76, "3x1x1": 52},
   {"1x3x3": 79, "3x1x1": 49},
   {"1x3x3": 173, "3x1x1": 83},
   {"1x3x3": 167, "3x1x1": 89},
   {"1x3x3": 153, "3x1x1": 103},
   {"1x3x3": 172, "3x1x1": 84},
   {"1x3x3": 171, "3x1x1": 85},
   {"1x3x3": 145, "3x1x1": 111},
   {"1x3x3": 293, "3x1x1": 219},
   {"1x3x3": 394, "3x1x1": 118},
   {"1x3x3": 217, "3x1x1": 295}
  ],
  "CAKES12D_C": [
   {"1x3x3": 34, "3x1x1": 30},
   {"1x3x3": 44, "3x1x1": 20},
   {"1x3x3": 59, "3x1x1": 5},
   {"1x3x3": 109, "3x1x1": 19},
   {"1x3x3": 69, "3x1x1": 59},
   {"1x3x3": 87, "3x1x1": 41},
   {"1x3x3": 105, "3x1x1": 23},
   {"1x3x3": 190, "3x1x1": 66},
   {"1x3x3": 153, "3x1x1": 103},
   {"1x3x3": 167, "3x1x1": 89},
   {"1x3x3": 160, "3x1x1": 96},
   {"1x3x3": 150, "3x1x1": 106},
   {"1x3x3": 95, "3x1x1": 161},
   {"1x3x3": 324, "3x1x1": 188},
   {"1x3x3": 299, "3x1x1": 213},
   {"1x3x3": 170, "3x1x1": 342}
  ],
  "CAKES23D_P": [
   {"3x3x3": 41, "1x3x3": 23},
   {"3x3x3": 45, "1x3x3": 19},
   {"3x3x3": 53, "1x3x3": 11},
   {"3x3x3": 68, "1x3x3": 60},
   {"3x3x3": 56, "1x3x3": 72},
   {"3x3x3": 61, "1x3x3": 67},
   {"3x3x3": 74, "1x3x3": 54},
   {"3x3x3": 154, "1x3x3": 102},
   {"3x3x3": 148, "1x3x3": 108},
   {"3x3x3": 161, "1x3x3": 95},
   {"3x3x3": 134, "1x3x3": 122},
   {"3x3x3": 145, "1x3x3": 111},
   {"3x3x3": 172, "1x3x3": 84},
   {"3x3x3": 328, "1x3x3": 184},
   {"3x3x3": 307, "1x3x3": 205},
   {"3x3x3": 303, "1x3x3": 209}
  ],
  "CAKES23D_C": [
   {"3x3x3": 14, "1x3x3": 50},
   {"3x3x3": 10, "1x3x3": 54},
   {"3x3x3": 4, "1x3x3": 60},
   {"3x3x3": 16, "1x3x3": 112},
   {"3x3x3": 27, "1x3x3": 101},
   {"3x3x3": 15, "1x3x3": 113},
   {"3x3x3": 15, "1x3x3": 113},
   {"3x3x3": 57, "1x3x3": 199},
   {"3x3x3": 48, "1x3x3": 208},
   {"3x3x3": 73, "1x3x3": 183},
   {"3x3x3": 48, "1x3x3": 208},
   {"3x3x3": 59, "1x3x3": 197},
   {"3x3x3": 97, "1x3x3": 159},
   {"3x3x3": 290, "1x3x3": 222},
   {"3x3x3": 340, "1x3x3": 172},
   {"3x3x3": 441, "1x3x3": 71}
  ],
  "CAKES123D_P": [
   {"3x3x3": 28, "1x3x3": 35, "3x1x1": 1},
   {"3x3x3": 24, "1x3x3": 40, "3x1x1": 0},
   {"3x3x3": 38, "1x3x3": 25, "3x1x1": 1},
   {"3x3x3": 35, "1x3x3": 54, "3x1x1": 39},
   {"3x3x3": 37, "1x3x3": 84, "3x1x1": 7},
   {"3x3x3": 20, "1x3x3": 98, "3x1x1": 10},
   {"3x3x3": 43, "1x3x3": 75, "3x1x1": 10},
   {"3x3x3": 133, "1x3x3": 76, "3x1x1": 47},
   {"3x3x3": 125, "1x3x3": 82, "3x1x1": 49},
   {"3x3x3": 63, "1x3x3": 174, "3x1x1": 19},
   {"3x3x3": 120, "1x3x3": 74, "3x1x1": 62},
   {"3x3x3": 102, "1x3x3": 86, "3x1x1": 68},
   {"3x3x3": 114, "1x3x3": 112, "3x1x1": 30},
   {"3x3x3": 257, "1x3x3": 91, "3x1x1": 164},
   {"3x3x3": 236, "1x3x3": 215, "3x1x1": 61},
   {"3x3x3": 337, "1x3x3": 83, "3x1x1": 92}
  ],
  "CAKES123D_C": [
   {"3x3x3": 2, "1x3x3": 38, "3x1x1": 24},
   {"3x3x3": 2, "1x3x3": 47, "3x1x1": 15},
   {"3x3x3": 1, "1x3x3": 56, "3x1x1": 7},
   {"3x3x3": 15, "1x3x3": 106, "3x1x1": 7},
   {"3x3x3": 8, "1x3x3": 82, "3x1x1": 38},
   {"3x3x3": 11, "1x3x3": 99, "3x1x1": 18},
   {"3x3x3": 7, "1x3x3": 106, "3x1x1": 15},
   {"3x3x3": 58, "1x3x3": 179, "3x1x1": 19},
   {"3x3x3": 32, "1x3x3": 188, "3x1x1": 36},
   {"3x3x3": 58, "1x3x3": 179, "3x1x1": 19},
   {"3x3x3": 47, "1x3x3": 194, "3x1x1": 15},
   {"3x3x3": 53, "1x3x3": 190, "3x1x1": 13},
   {"3x3x3": 80, "1x3x3": 132, "3x1x1": 44},
   {"3x3x3": 279, "1x3x3": 233, "3x1x1": 0},
   {"3x3x3": 352, "1x3x3": 158, "3x1x1": 2},
   {"3x3x3": 442, "1x3x3": 61, "3x1x1": 9}
  ]
 }
}
)json";

Config parse_block(const nlohmann::ordered_json& j, size_t i) {
  const std::string where = "block " + std::to_string(i);
  if (!j.is_object())
    throw std::invalid_argument(
        where +
        ": expected an object like {\"1x3x3\": 32, \"3x1x1\": 32}, got " +
        util::describe_json(j));
  // Values are numbers, or one array of numbers (output_index): anything
  // nested deeper is refused before the block is written out for
  // Config::parse, so that dump() never recurses through a hostile depth.
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& v = it.value();
    bool flat = !v.is_object();
    for (size_t k = 0; flat && v.is_array() && k < v.size(); ++k)
      flat = !v[k].is_structured();
    if (!flat)
      throw std::invalid_argument(
          where + ": value of \"" + util::one_line(it.key(), 40) +
          "\" must be a channel count or a list of integers, got an " +
          v.type_name());
  }
  try {
    return Config::parse(j.dump());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
}

std::vector<Config> parse_blocks(const nlohmann::ordered_json& blocks) {
  std::vector<Config> out;
  for (size_t i = 0; i < blocks.size(); ++i)
    out.push_back(parse_block(blocks[i], i));
  return out;
}

// j[key] as a string; `fallback` when absent.
std::string optional_string(
    const nlohmann::ordered_json& j,
    const char* key,
    const std::string& fallback) {
  if (!j.contains(key))
    return fallback;
  if (!j[key].is_string())
    throw std::invalid_argument(
        std::string("network configuration: \"") + key + "\" must be a string");
  return j[key].get<std::string>();
}

} // namespace

NetworkConfig parse_network_config(const std::string& text) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(
        "network configuration is not valid JSON: " + util::one_line(e.what()));
  }
  if (!j.is_object() || !j.contains("blocks") || !j["blocks"].is_array())
    throw std::invalid_argument(
        "network configuration: expected an object with a \"blocks\" array");
  NetworkConfig c;
  c.network = optional_string(j, "network", c.network);
  c.op = optional_string(j, "op", c.op);
  c.blocks = parse_blocks(j["blocks"]);
  return c;
}

NetworkConfig load_network_config(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw std::invalid_argument(
        "cannot read network configuration '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return parse_network_config(ss.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

const char* embedded_presets_json() {
  return kPresets + 1; // skip the newline after the raw-string opener
}

std::vector<std::string> preset_names() {
  const auto j = nlohmann::ordered_json::parse(kPresets);
  std::vector<std::string> names;
  for (auto it = j["presets"].begin(); it != j["presets"].end(); ++it)
    names.push_back(it.key());
  return names;
}

NetworkConfig preset(const std::string& name) {
  const auto j = nlohmann::ordered_json::parse(kPresets);
  if (!j["presets"].contains(name)) {
    std::string known;
    for (const auto& n : preset_names())
      known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument(
        "unknown preset '" + name + "' (known: " + known + ")");
  }
  NetworkConfig c;
  c.network = j["network"].get<std::string>();
  c.op = "cakes";
  c.blocks = parse_blocks(j["presets"][name]);
  return c;
}

} // namespace cakes::models
