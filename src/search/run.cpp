#include "cakes/search/run.h"

#include "cakes/search/derive.h"
#include "cakes/search/importance.h"
#include "cakes/search/performance.h"
#include "cakes/train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <random>
#include <stdexcept>

namespace cakes::search {

std::string SearchMeta::section_json() const {
  nlohmann::ordered_json j;
  j["mode"] = mode;
  j["input_sizes"] = input_sizes;
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
  if (validate)
    o.trainer.validate = [np, validate](int64_t) {
      SelectionGuard restore(*np);
      select(*np, derive_by_volume(*np).kept);
      return validate(np->model);
    };
  train::Trainer trainer(m, std::move(loss), o.trainer);
  ps->optimizer = &trainer.optimizer();
  ps->trainer = &trainer;
  auto out = trainer.fit(loader);
  clear_selection(net);
  return out;
}

} // namespace cakes::search
