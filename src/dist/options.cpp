#include "cakes/dist/options.h"

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace cakes::dist {

namespace {

long long parse_int(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0) {
    throw std::invalid_argument(what + "='" + text + "' is not an integer");
  }
  return v;
}

double parse_double(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0) {
    throw std::invalid_argument(what + "='" + text + "' is not a number");
  }
  return v;
}

} // namespace

DistOptions from_env_and_flags(const DistFlags& flags, const EnvLookup& env) {
  const EnvLookup get = env ? env : EnvLookup([](const char* name) {
    return static_cast<const char*>(std::getenv(name));
  });
  DistOptions o;
  std::string world_from = "WORLD_SIZE", rank_from = "RANK";
  if (const char* v = get("WORLD_SIZE")) {
    o.world_size = static_cast<int>(parse_int(v, "WORLD_SIZE"));
  }
  if (const char* v = get("RANK")) {
    o.rank = static_cast<int>(parse_int(v, "RANK"));
  }
  if (const char* v = get("MASTER_ADDR")) {
    o.master_addr = v;
  }
  if (const char* v = get("MASTER_PORT")) {
    o.master_port = static_cast<int>(parse_int(v, "MASTER_PORT"));
  }
  if (const char* v = get("CAKES_DIST_TIMEOUT")) {
    o.timeout_seconds = parse_double(v, "CAKES_DIST_TIMEOUT");
  }
  if (const char* v = get("CAKES_DIST_BACKEND")) {
    o.backend = v;
  }
  if (const char* v = get("GLOO_SOCKET_IFNAME")) {
    o.interface = v;
  }
  if (flags.world_size) {
    o.world_size = *flags.world_size;
    world_from = "--world-size";
  }
  if (flags.rank) {
    o.rank = *flags.rank;
    rank_from = "--rank";
  }
  if (flags.master_addr) {
    o.master_addr = *flags.master_addr;
  }
  if (flags.master_port) {
    o.master_port = *flags.master_port;
  }
  if (flags.timeout_seconds) {
    o.timeout_seconds = *flags.timeout_seconds;
  }
  if (flags.backend) {
    o.backend = *flags.backend;
  }
  if (flags.interface) {
    o.interface = *flags.interface;
  }

  if (o.world_size < 1) {
    throw std::invalid_argument(
        world_from + " must be >= 1, got " + std::to_string(o.world_size));
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    throw std::invalid_argument(
        rank_from + " must be in [0, " + std::to_string(o.world_size) +
        "), got " + std::to_string(o.rank));
  }
  if (o.master_port < 1 || o.master_port > 65535) {
    throw std::invalid_argument(
        "master port must be in [1, 65535], got " +
        std::to_string(o.master_port));
  }
  if (!(o.timeout_seconds > 0)) {
    throw std::invalid_argument(
        "distributed timeout must be positive, got " +
        std::to_string(o.timeout_seconds) + " s");
  }
  if (o.backend != "auto" && o.backend != "gloo" && o.backend != "nccl") {
    throw std::invalid_argument(
        "unknown distributed backend '" + o.backend +
        "' (expected auto, gloo or nccl)");
  }
  if (o.master_addr.empty()) {
    throw std::invalid_argument("master address is empty");
  }
  return o;
}

} // namespace cakes::dist
