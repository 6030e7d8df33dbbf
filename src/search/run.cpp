#include "cakes/search/run.h"

#include "cakes/search/derive.h"
#include "cakes/search/importance.h"
#include "cakes/search/performance.h"
#include "cakes/train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>

namespace cakes::search {

std::string SearchMeta::section_json() const {
  nlohmann::ordered_json j;
  j["mode"] = mode;
  j["input_sizes"] = input_sizes;
  j["settings"] = nlohmann::ordered_json::object();
  for (const auto& [flag, value] : settings)
    j["settings"][flag] = nlohmann::ordered_json::parse(value);
  return j.dump();
}

SearchMeta read_search_meta(const std::string& path) {
  const auto cm = train::read_checkpoint_meta(path);
  const auto it = cm.sections.find("search");
  if (cm.network.op.op != "super" || it == cm.sections.end())
    throw std::runtime_error(
        path + " is not a search checkpoint (it holds " +
        cm.network.describe() +
        "; use the search.ckpt written by cakes search)");
  SearchMeta m;
  try {
    const auto j = nlohmann::json::parse(it->second);
    m.mode = j.at("mode").get<std::string>();
    m.input_sizes = j.at("input_sizes").get<std::vector<int64_t>>();
    if (j.contains("settings"))
      for (const auto& [flag, value] : j.at("settings").items())
        m.settings[flag] = value.dump();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(
        path + ": damaged search checkpoint metadata (" + e.what() + ")");
  }
  return m;
}

SuperNet load_search_checkpoint(const std::string& path, SearchMeta* out) {
  const auto meta = read_search_meta(path);
  const auto spec = train::read_checkpoint_meta(path).network;
  auto net = build_supernet(spec, spec.op.candidates);
  train::load_checkpoint_weights(path, net.model);
  if (out)
    *out = meta;
  return net;
}

namespace {

// A setting's value for people: JSON text without a string's quotes.
std::string shown(const std::string& json_text) {
  const auto v = nlohmann::json::parse(json_text);
  return v.is_string() ? v.get<std::string>() : json_text;
}

// Throws std::invalid_argument naming the first setting whose value differs
// from the one the checkpoint was searched with. Checkpoints of builds that
// recorded no settings are not checked here (the network and schedule still
// are, by Trainer::resume).
void check_same_settings(
    const std::string& path,
    const std::map<std::string, std::string>& was,
    const std::map<std::string, std::string>& now) {
  if (was.empty())
    return;
  std::map<std::string, std::pair<std::string, std::string>> all;
  for (const auto& [flag, value] : was)
    all[flag].first = value;
  for (const auto& [flag, value] : now)
    all[flag].second = value;
  for (const auto& [flag, values] : all) {
    if (!values.first.empty() && !values.second.empty() &&
        nlohmann::json::parse(values.first) ==
            nlohmann::json::parse(values.second))
      continue;
    const auto text = [](const std::string& v) {
      return v.empty() ? std::string("(not set)") : shown(v);
    };
    throw std::invalid_argument(
        "cannot resume from '" + path + "': it was searched with " + flag +
        " " + text(values.first) + ", not " + text(values.second) +
        " (repeat the search's flags to continue it, or start over)");
  }
}

} // namespace

std::map<std::string, double> kept_shares(const SuperNet& net) {
  const auto d = derive_by_volume(net);
  std::vector<double> kept(net.candidates.size(), 0);
  double total = 0;
  for (const auto& layer : d.counts)
    for (size_t n = 0; n < layer.size() && n < kept.size(); ++n) {
      kept[n] += static_cast<double>(layer[n]);
      total += static_cast<double>(layer[n]);
    }
  std::map<std::string, double> out;
  for (size_t n = 0; n < kept.size(); ++n)
    out["kept_" + net.candidates[n].str()] = total > 0 ? kept[n] / total : 0;
  return out;
}

std::string epoch_report(
    const train::EpochSummary& s,
    int64_t epochs,
    const std::vector<SubKernel>& candidates) {
  char buf[160];
  std::snprintf(
      buf,
      sizeof buf,
      "epoch %lld/%lld: loss %.4f, %.1f s (%.3f s/step)",
      static_cast<long long>(s.epoch + 1),
      static_cast<long long>(epochs),
      s.mean_loss,
      s.seconds,
      s.steps ? s.seconds / static_cast<double>(s.steps) : 0.0);
  std::string out = buf, kept;
  for (const auto& c : candidates) {
    const auto it = s.metrics.find("kept_" + c.str());
    if (it == s.metrics.end())
      continue;
    std::snprintf(
        buf, sizeof buf, "%s %.0f%%", c.str().c_str(), 100 * it->second);
    kept += (kept.empty() ? "" : ", ") + std::string(buf);
  }
  if (!kept.empty())
    out += "; derived now keeps " + kept + " of the channels";
  for (const auto& [key, value] : s.metrics) {
    if (key.rfind("kept_", 0) == 0)
      continue;
    std::snprintf(buf, sizeof buf, "; %s %.4f", key.c_str(), value);
    out += buf;
  }
  return out;
}

std::vector<train::EpochSummary> run_search(
    SuperNet& net,
    train::Loader& loader,
    train::LossFn loss,
    SearchOptions o,
    std::function<std::map<std::string, double>(const models::Model&)>
        validate) {
  if (o.mode != "C" && o.mode != "P")
    throw std::invalid_argument(
        "unknown search mode '" + o.mode + "' (expected C or P)");
  const bool p_mode = o.mode == "P";
  // P's state across the trainer's hooks: the step's subset, what it must
  // not change, and the optimizer (known once the trainer exists).
  struct PState {
    std::vector<std::vector<int64_t>> kept;
    std::optional<DroppedChannels> dropped;
    torch::optim::Optimizer* optimizer = nullptr;
    const train::Trainer* trainer = nullptr;
  };
  auto ps = std::make_shared<PState>();
  const uint64_t seed = o.seed;
  SearchMeta meta;
  meta.mode = o.mode;
  meta.input_sizes = o.input_sizes;
  meta.settings = o.settings;
  meta.settings["--mode"] = nlohmann::json(o.mode).dump();
  meta.settings["--seed"] = nlohmann::json(o.seed).dump();
  if (!p_mode) {
    meta.settings["--sparsity"] = nlohmann::json(o.sparsity).dump();
    meta.settings["--no-reweight"] = nlohmann::json(!o.reweight).dump();
  }
  if (!o.resume_from.empty())
    check_same_settings(
        o.resume_from, read_search_meta(o.resume_from).settings, meta.settings);
  o.trainer.checkpoint_sections["search"] = meta.section_json();
  models::Model m = net.model;
  SuperNet* np = &net;
  m.forward = [np, p_mode, ps, seed](const at::Tensor& x) {
    // P: a fresh subset of exactly C_out channels per layer for every step,
    // drawn from (seed, step) alone: every rank of a data-parallel search
    // keeps the same subset, and a step's subset does not depend on what
    // ran before it.
    if (p_mode && np->model.module->is_training()) {
      std::mt19937_64 rng(
          train::mix_seed(seed, static_cast<uint64_t>(ps->trainer->step()), 0));
      ps->kept = select_random(*np, rng);
    }
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
  // Every epoch's metrics: the importance summary, then the caller's
  // validation of the derived sub-network.
  o.trainer.validate = [np, validate](int64_t) {
    auto metrics = kept_shares(*np);
    if (validate) {
      SelectionGuard restore(*np);
      select(*np, derive_by_volume(*np).kept);
      metrics.merge(validate(np->model));
    }
    return metrics;
  };
  const bool is_main = !o.trainer.parallel || o.trainer.parallel->is_main();
  train::Trainer trainer(m, std::move(loss), o.trainer);
  ps->optimizer = &trainer.optimizer();
  ps->trainer = &trainer;
  if (!o.resume_from.empty())
    trainer.resume(o.resume_from);
  std::vector<train::EpochSummary> out;
  while (trainer.epoch() < o.trainer.epochs) {
    out.push_back(trainer.train_epoch(loader));
    if (o.on_epoch && is_main)
      o.on_epoch(out.back());
  }
  clear_selection(net);
  return out;
}

} // namespace cakes::search
