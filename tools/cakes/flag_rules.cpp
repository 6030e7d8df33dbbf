// The ranges of every numeric flag of the CLI, in one table, applied to every
// subcommand that has the flag (apply_flag_rules, called by main before
// parsing). Each value is checked as text before CLI11 converts it, so that
// "nan", "-5" and absurd sizes give one readable line, e.g.
//   --batch: must be an integer from 1 to 4096, got '0'
// The upper bounds are stated limits: far above any real use, low enough that
// nothing runs for minutes or allocates without bound before failing.
#include "commands.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace cakes::cli {

namespace {

struct Rule {
  const char* flag;     // long name without dashes
  const char* commands; // subcommands it applies to ("" = all), space-separated
  bool integer;
  double lo, hi;
  bool lo_open = false, hi_open = false;
};

std::string number_text(double v) {
  if (std::isinf(v)) {
    return "infinity";
  }
  std::ostringstream s;
  s << v;
  return s.str();
}

// The range as --help shows it after the type, e.g. "INT:[1, 4096]".
std::string help_text(const Rule& r) {
  if (std::isinf(r.hi)) {
    return (r.lo_open ? "> " : ">= ") + number_text(r.lo);
  }
  return (r.lo_open ? "(" : "[") + number_text(r.lo) + ", " +
         number_text(r.hi) + (r.hi_open ? ")" : "]");
}

std::string range_text(const Rule& r) {
  const bool unbounded = std::isinf(r.hi);
  std::string kind = r.integer ? "an integer" : "a finite number";
  if (unbounded) {
    return kind + (r.lo_open ? " > " : " >= ") + number_text(r.lo);
  }
  if (!r.lo_open && !r.hi_open) {
    return kind + " from " + number_text(r.lo) + " to " + number_text(r.hi);
  }
  return kind + " in " + (r.lo_open ? "(" : "[") + number_text(r.lo) + ", " +
         number_text(r.hi) + (r.hi_open ? ")" : "]");
}

// "" when `text` satisfies `r`, else why not.
std::string check(const Rule& r, const std::string& text) {
  const std::string why = "must be " + range_text(r) + ", got '" + text + "'";
  if (text.empty()) {
    return why;
  }
  char* end = nullptr;
  errno = 0;
  double v = 0;
  if (r.integer) {
    const long long i = std::strtoll(text.c_str(), &end, 10);
    v = static_cast<double>(i);
  } else {
    v = std::strtod(text.c_str(), &end);
  }
  if (errno != 0 || end != text.c_str() + text.size() || !std::isfinite(v)) {
    return why;
  }
  const bool below = r.lo_open ? v <= r.lo : v < r.lo;
  const bool above = r.hi_open ? v >= r.hi : v > r.hi;
  return below || above ? why : std::string();
}

bool applies(const Rule& r, const std::string& command) {
  const std::string list = std::string(" ") + r.commands + " ";
  return std::string(r.commands).empty() ||
         list.find(" " + command + " ") != std::string::npos;
}

std::vector<Rule> rules() {
  constexpr double inf = std::numeric_limits<double>::infinity();
  // More threads than 4 per core only slow a run down; the bound keeps
  // --threads 100000 from spending minutes creating threads.
  const double cores = std::max(1u, std::thread::hardware_concurrency()) * 4.0;
  return {
      // Sizes of the data and the network.
      {"batch", "", true, 1, 4096},
      {"frames", "", true, 1, 512},
      {"size", "", true, 1, 1024},
      {"scale", "", true, 0, 4096},
      {"patch", "", true, 1, 512},
      {"window", "", true, 1, 512},
      {"spacing", "", false, 0, 100, true},
      {"ct-window", "", false, -1e5, 1e5},
      {"classes", "", true, 1, 100000},
      {"num-classes", "", true, 1, 100000},
      {"in-channels", "", true, 1, 1024},
      {"width", "", true, 0, 4096},
      {"in", "layer kernels", true, 1, 65536},
      {"out", "layer kernels", true, 1, 65536},
      {"videos", "", true, 1, 1000000},
      {"val-videos", "", true, 0, 1000000},
      // Schedule and optimisation.
      {"epochs", "", true, 1, 100000},
      {"milestones", "", true, 1, 100000},
      {"lr", "", false, 0, inf},
      {"weight-decay", "", false, 0, inf},
      {"clip", "", false, 0, inf},
      {"warmup", "", false, 0, 100000},
      {"sparsity", "", false, 0, inf},
      {"foreground", "", false, 0, 1},
      {"overlap", "", false, 0, 1, false, true},
      {"target-latency", "", false, 0, inf, true},
      {"log-every", "", true, 1, 1e9},
      {"val-every", "train", true, 0, 100000},
      // Evaluation and reports.
      {"clips", "", true, 1, 1000},
      {"top", "", true, 1, 100000},
      {"repeats", "", true, 1, 100000},
      // Processes and threads.
      {"threads", "", true, 0, cores},
      {"workers", "", true, 0, 256},
      {"nproc", "", true, 1, 256},
      {"master-port", "", true, 0, 65535},
      {"kill-grace", "", false, 0, 3600},
      {"dropout", "", false, 0, 1, false, true},
  };
}

void attach_rules(CLI::App& app, const std::vector<Rule>& table) {
  for (CLI::App* sub : app.get_subcommands({})) {
    for (CLI::Option* opt : sub->get_options()) {
      for (const Rule& r : table) {
        if (!opt->check_lname(r.flag) || !applies(r, sub->get_name())) {
          continue;
        }
        // CLI11's own range checks would answer first, with messages such as
        // "Value 0 not in range 0.000000 to 1797...": the table replaces them.
        for (int i = 0;; ++i) {
          CLI::Validator* v = nullptr;
          try {
            v = opt->get_validator(i);
          } catch (const CLI::OptionNotFound&) {
            break;
          }
          const std::string d = v->get_description();
          if (d == "POSITIVE" || d == "NONNEGATIVE")
            v->active(false);
        }
        const Rule rule = r;
        opt->check(CLI::Validator(
            [rule](std::string& text) { return check(rule, text); },
            help_text(rule)));
      }
    }
    attach_rules(*sub, table);
  }
}

} // namespace

void apply_flag_rules(CLI::App& app) {
  attach_rules(app, rules());
}

} // namespace cakes::cli
