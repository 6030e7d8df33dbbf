// `cakes search`, `cakes derive`, `cakes profile` (docs/CAKES.md §4): thin
// wrappers over include/cakes/search/search.h.
#include "commands.h"
#include "data_options.h"
#include "dist_job.h"
#include "init_options.h"
#include "input_spec.h"
#include "net_options.h"

#include "cakes/eval/evaluate.h"
#include "cakes/search/search.h"
#include "cakes/train/checkpoint.h"
#include "cakes/train/losses.h"
#include "cakes/train/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <unistd.h>

namespace cakes::cli {
namespace {

// Atomically: an interrupted or failed write leaves the previous file whole.
void write_text(const std::string& path, const std::string& text) {
  train::write_file_atomically(path, text);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f)
    throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string gmacs(double macs) {
  std::ostringstream s;
  s.precision(4);
  s << macs / 1e9 << " GMACs";
  return s.str();
}

void report(
    const search::SuperNet& net,
    const search::Derivation& d,
    const search::CostModel& cm) {
  const bool macs = cm.unit == "MACs";
  std::cout << "derived " << net.layers.size() << " searched layers of "
            << net.positions.size() << " positions; cost "
            << (macs ? gmacs(d.cost) : std::to_string(d.cost) + " ms") << " = "
            << d.cost / cm.reference << " x the 3x3x3 network ("
            << (macs ? gmacs(cm.reference)
                     : std::to_string(cm.reference) + " ms")
            << ")\n";
  // Groups only: an output order would print one entry per channel (it is in
  // the written configuration).
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const auto& c = d.configs[net.layers[l].position];
    std::cout << "  " << net.layers[l].name << "  " << Config(c.groups()).str()
              << (c.output_index().empty() ? "" : "  (channels reordered)")
              << "\n";
  }
}

struct SearchArgs {
  std::string net = "i3d_resnet50", candidates = "video_123d", mode = "C";
  double sparsity = 1e-4, lr = 0.04, weight_decay = 3e-4, clip = 20;
  bool no_reweight = false, force = false, resume = false, reschedule = false;
  int64_t epochs = 1, batch = 8, workers = 2, width = 0, log_every = 10;
  uint64_t seed = 0;
  std::string out_dir;
  int threads = 0;
  DataOptions data;
  InitOptions init;
  double dropout = -1;
  DistArgs dist;
};

// Flags that do not change what a search computes (where it writes, how
// fast, how it reports, how processes meet), the schedule's (checked by the
// trainer, --reschedule), and those run_search records itself.
const std::set<std::string>& not_search_settings() {
  static const std::set<std::string> flags = {
      "--help",        "--out-dir",     "--threads",      "--workers",
      "--force",       "--resume",      "--reschedule",   "--log-every",
      "--lr",          "--epochs",      "--world-size",   "--rank",
      "--master-addr", "--master-port", "--dist-timeout", "--dist-backend",
      "--bucket-mb",   "--init-check",  "--mode",         "--seed",
      "--sparsity",    "--no-reweight"};
  return flags;
}

// The value of every other flag of `cmd`, given or default, as JSON text:
// what a resumed search must be given again (search::SearchOptions::settings).
std::map<std::string, std::string> search_settings(CLI::App* cmd) {
  std::map<std::string, std::string> out;
  for (CLI::Option* opt : cmd->get_options()) {
    const std::string flag = opt->get_name();
    if (flag.rfind("--", 0) != 0 || not_search_settings().count(flag))
      continue;
    if (opt->get_type_size() == 0) { // a flag without a value
      out[flag] = nlohmann::json(opt->count() > 0).dump();
      continue;
    }
    // The bound variable's current value: what was given, else its default.
    opt->capture_default_str();
    std::string value = opt->get_default_str();
    if (value.empty() && opt->count() > 0)
      for (const auto& r : opt->results())
        value += (value.empty() ? "" : " ") + r;
    out[flag] = nlohmann::json(value).dump();
  }
  return out;
}

void run_search_command(const SearchArgs& a, CLI::App* cmd) {
  set_threads(a.threads);
  // LibTorch's default generator starts from a random seed: without this the
  // super-network's initial weights, and so the search's result, would
  // change from run to run.
  torch::manual_seed(a.seed);
  DistJob job(a.dist, a.batch);
  const std::string ckpt = a.out_dir + "/search.ckpt",
                    config = a.out_dir + "/config.json",
                    log = a.out_dir + "/search.log.jsonl";
  // As train: an existing search is continued (--resume) or replaced
  // (--force), never silently.
  if (a.resume && !std::filesystem::exists(ckpt))
    throw std::invalid_argument("--resume: no search checkpoint at " + ckpt);
  const bool replace = !a.resume && std::filesystem::exists(ckpt);
  if (replace && !a.force)
    throw std::invalid_argument(
        ckpt +
        " exists: give --resume to continue it or --force to start over");
  if (!a.resume)
    refuse_overwrite(config, a.force);
  const auto candidates = search::parse_candidates(a.candidates);
  if (a.mode != "C" && a.mode != "P")
    throw std::invalid_argument(
        "unknown --mode '" + a.mode + "' (expected C or P)");
  auto train_set = make_dataset(a.data, /*training=*/true);
  auto val_set = make_dataset(a.data, /*training=*/false);
  std::mt19937_64 rng(a.seed);
  const auto first = train_set.dataset->get(0, rng).input;

  std::vector<int64_t> input_sizes = {1};
  for (auto s : first.sizes())
    input_sizes.push_back(s);

  models::NetworkSpec spec;
  spec.network = a.net;
  spec.num_classes = train_set.num_classes;
  spec.in_channels = first.size(0);
  spec.width = a.width;
  job.join();
  // With the job's norm (synchronised BatchNorm with --sync-bn); every rank
  // takes rank 0's weights when training starts.
  auto net = search::build_supernet(spec, candidates, job.build_options());
  if (net.layers.empty())
    throw std::invalid_argument(
        "network '" + a.net + "' has no position that can be searched");
  init_supernet(a.init, net.model);
  apply_dropout(net.model, a.dropout);

  // The inputs are checked (data read, network built): only now does --force
  // replace the old run. The checkpoint and configuration are replaced
  // atomically when the new ones are written; the old log would otherwise
  // be appended to.
  std::filesystem::create_directories(a.out_dir);
  if (job.is_main() && !a.resume)
    std::filesystem::remove(log);
  search::SearchOptions o;
  o.mode = a.mode;
  o.sparsity = a.sparsity;
  o.reweight = !a.no_reweight;
  o.seed = a.seed;
  o.input_sizes = input_sizes;
  o.settings = search_settings(cmd);
  o.resume_from = a.resume ? ckpt : "";
  o.on_epoch = [&](const train::EpochSummary& s) {
    std::cout << search::epoch_report(s, a.epochs, candidates) << "\n"
              << std::flush;
  };
  o.trainer.allow_schedule_change = a.reschedule;
  o.trainer.progress_every = a.log_every;
  o.trainer.epochs = a.epochs;
  o.trainer.schedule.base_lr = a.lr;
  // Recorded in the checkpoint: --resume with another --epochs is then
  // refused unless --reschedule, as in train (the rate itself is constant).
  o.trainer.schedule.total_epochs = a.epochs;
  o.trainer.optimizer.weight_decay = a.weight_decay;
  o.trainer.clip_grad_norm = a.clip;
  o.trainer.checkpoint_path = ckpt;
  o.trainer.checkpoint_sections["input"] = input_section(a.data, train_set);
  o.trainer.log_path = log;
  o.trainer.progress = &std::cout;
  o.trainer.progress_is_terminal = isatty(1) != 0;
  o.trainer.parallel = job.parallel();

  train::LoaderOptions lo;
  lo.batch_size = job.local_batch();
  lo.num_workers = int(a.workers);
  lo.seed = a.seed;
  lo.drop_last = true;
  train::Loader loader(
      train_set.dataset, lo, job.sampler(train_set.dataset->size(), a.seed));

  std::function<std::map<std::string, double>(const models::Model&)> validate;
  if (!train_set.volumetric) {
    validate = [&](const models::Model& derived) {
      const auto s =
          job.evaluate_video(derived, val_set.dataset, 1, job.local_batch());
      return std::map<std::string, double>{{"derived_top1", s.top1}};
    };
  }
  const auto loss = train_set.volumetric
                        ? train::LossFn(train::dice_cross_entropy)
                        : train::LossFn(train::cross_entropy);
  if (job.is_main()) {
    std::string kernels;
    for (const auto& c : candidates)
      kernels += (kernels.empty() ? "" : ",") + c.str();
    std::ostringstream mode;
    mode << a.mode;
    if (a.mode == "P")
      mode << " (random channel subsets)";
    else
      mode << " (sparsity " << a.sparsity
           << (a.no_reweight ? ")" : ", re-weighted)");
    std::cout << "searching " << a.net
              << (a.width ? " width " + std::to_string(a.width) : "")
              << ", mode " << mode.str() << ", candidates " << kernels
              << "\n  on " << train_set.dataset->describe() << "\n  "
              << a.epochs << " epochs x " << loader.batches_in_epoch(0)
              << " steps of batch " << lo.batch_size << ", "
              << at::get_num_threads() << " threads, " << a.workers
              << " loader workers";
    if (job.distributed())
      std::cout << ", " << job.world_size() << " processes (global batch "
                << a.batch << ")";
    std::cout << "; writes " << a.out_dir << "\n";
    if (a.resume)
      std::cout << "resuming " << ckpt << " after epoch "
                << train::read_checkpoint_meta(ckpt).epoch << "\n";
    std::cout << std::flush;
  }
  search::run_search(net, loader, loss, o, validate);
  if (!job.is_main())
    return;

  const auto d = search::derive_by_volume(net);
  const auto cm = search::mac_cost_model(net, input_sizes);
  search::Derivation shown = d;
  shown.cost = cm.total(d.counts);
  write_text(config, search::config_json(net, d));
  report(net, shown, cm);
  std::cout << "wrote " << a.out_dir << "/search.ckpt and " << a.out_dir
            << "/config.json\n";
}

struct DeriveArgs {
  std::string from, out, target_macs, table, input;
  double target_latency = 0;
  bool force = false;
};

// "0.5" (fraction of the 3x3x3 network), "30G", "800M", or a plain count.
std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s;
  for (auto d : dims)
    s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

double parse_macs_target(const std::string& text, double reference) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string suffix = text.substr(used);
  if (used == 0 || v <= 0 ||
      (!suffix.empty() && suffix != "G" && suffix != "M" && suffix != "K" &&
       suffix != "k"))
    throw std::invalid_argument(
        "bad --target-macs '" + text +
        "' (expected a fraction of the 3D network such as 0.5, or MACs such "
        "as 30G)");
  if (suffix == "G")
    return v * 1e9;
  if (suffix == "M")
    return v * 1e6;
  if (!suffix.empty())
    return v * 1e3;
  return v <= 1 ? v * reference : v;
}

void run_derive_command(const DeriveArgs& a) {
  refuse_input_as_output(a.out, {a.from, a.table});
  search::SearchMeta meta;
  auto net = search::load_search_checkpoint(a.from, &meta);
  auto input = meta.input_sizes;
  if (!a.input.empty())
    input = parse_dims(a.input, "--input");
  const auto imp = search::importance(net);
  auto macs = search::mac_cost_model(net, input);
  search::Derivation d;
  if (!a.target_macs.empty() && a.target_latency > 0)
    throw std::invalid_argument(
        "give --target-macs or --target-latency, not both");
  if (!a.table.empty() && a.target_latency <= 0)
    throw std::invalid_argument("--latency-table needs --target-latency");
  if (a.target_latency > 0) {
    if (a.table.empty())
      throw std::invalid_argument(
          "--target-latency needs --latency-table (made by cakes profile)");
    const auto table = search::LatencyTable::parse(read_text(a.table));
    // Measured latencies hold only for the input they were measured at.
    if (!a.input.empty() && input != table.input_sizes)
      throw std::invalid_argument(
          "--input " + a.input + " differs from the input " +
          dims_str(table.input_sizes) + " the latency table " + a.table +
          " was measured at (run cakes profile --input " + a.input + ")");
    input = table.input_sizes;
    macs = search::mac_cost_model(net, input);
    const auto cm = search::latency_cost_model(net, table);
    d = search::derive(net, imp, cm, a.target_latency);
    report(net, d, cm);
    std::cout << "target " << a.target_latency << " ms; modelled latency "
              << d.cost << " ms at input " << dims_str(input) << " with "
              << table.threads << " threads; MACs "
              << gmacs(macs.total(d.counts)) << "\n";
  } else if (!a.target_macs.empty()) {
    const double target = parse_macs_target(a.target_macs, macs.reference);
    d = search::derive(net, imp, macs, target);
    report(net, d, macs);
    std::cout << "target " << gmacs(target) << "; achieved " << gmacs(d.cost)
              << "\n";
  } else {
    d = search::derive(net, imp, macs);
    report(net, d, macs);
  }
  refuse_overwrite(a.out, a.force); // after the inputs' own errors
  write_text(a.out, search::config_json(net, d));
  std::cout << "wrote " << a.out << "\n";
}

struct ProfileArgs {
  std::string net = "i3d_resnet50", candidates = "video_123d", out, input;
  int64_t classes = 174, in_channels = 1, width = 0;
  int repeats = 5, threads = 0;
  bool force = false;
};

void run_profile_command(const ProfileArgs& a) {
  refuse_overwrite(a.out, a.force); // before minutes of measuring
  set_threads(a.threads);
  models::NetworkSpec spec;
  spec.network = a.net;
  spec.num_classes = a.classes;
  spec.in_channels = a.in_channels;
  spec.width = a.width;
  auto net =
      search::build_supernet(spec, search::parse_candidates(a.candidates));
  std::vector<int64_t> input;
  if (!a.input.empty())
    input = parse_dims(a.input, "--input");
  else if (net.model.spec.video())
    input = {1, 3, 8, 224, 224};
  else
    input = {1, a.in_channels, 64, 64, 64};
  const auto t = search::measure_latency(net, input, a.repeats);
  write_text(a.out, t.json());
  std::cout << "profiled " << t.layers.size() << " layers of " << a.net
            << " at input " << dims_str(input) << " with " << t.threads
            << " threads; rest of the network " << t.rest_ms
            << " ms; 3x3x3 network (modelled) " << t.reference_ms
            << " ms; wrote " << a.out << "\n";
}

} // namespace

void add_search(CLI::App& app) {
  auto a = std::make_shared<SearchArgs>();
  auto* cmd = app.add_subcommand(
      "search", "search a CAKES configuration (docs/CAKES.md §4) on a dataset");
  cmd->add_option("--net", a->net, "network")->required();
  cmd->add_option(
      "--width", a->width, "network base width (0: the network's default)");
  cmd->add_option(
      "--candidates",
      a->candidates,
      "candidate sub-kernels, e.g. 3x3x3,1x3x3,3x1x1, or video_12d, "
      "video_23d, video_123d, volumetric_2d, volumetric_1d, volumetric_all");
  cmd->add_option(
      "--mode", a->mode, "C (cost-priority) or P (performance-priority)");
  cmd->add_option("--sparsity", a->sparsity, "C: L1 strength on BN scales");
  cmd->add_flag(
      "--no-reweight", a->no_reweight, "C: w_op = 1 for every candidate");
  cmd->add_option("--epochs", a->epochs, "epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a->lr, "learning rate (SGD, momentum 0.9)");
  cmd->add_option(
      "--weight-decay", a->weight_decay, "weight decay (not on BN/bias)");
  cmd->add_option("--clip", a->clip, "gradient-norm clipping (0: none)");
  cmd->add_option(
         "--batch",
         a->batch,
         "batch size of one step; with several processes the global batch, "
         "split evenly over them")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--workers", a->workers, "loader threads");
  cmd->add_option(
      "--seed", a->seed, "seed of the weights, the loader and P's subsets");
  cmd->add_option(
         "--out-dir", a->out_dir, "writes search.ckpt and config.json here")
      ->required();
  cmd->add_option("--threads", a->threads, "LibTorch threads (0: all cores)");
  cmd->add_flag(
      "--force",
      a->force,
      "start over when --out-dir holds a search (replaced once the data is "
      "read)");
  add_data_options(cmd, a->data);
  add_init_flags(cmd, a->init);
  add_dropout_option(cmd, a->dropout);
  add_dist_options(cmd, a->dist);
  cmd->add_flag(
      "--resume",
      a->resume,
      "continue the search in --out-dir from its last complete epoch (the "
      "same flags; docs/SEARCH.md)");
  cmd->add_flag(
      "--reschedule",
      a->reschedule,
      "with --resume: follow a changed --epochs or --lr from the checkpoint's "
      "step instead of refusing it");
  cmd->add_option(
      "--log-every",
      a->log_every,
      "a progress line every N steps when stdout is not a terminal");
  cmd->callback([a, cmd] { run_search_command(*a, cmd); });

  auto d = std::make_shared<DeriveArgs>();
  auto* dc = app.add_subcommand(
      "derive", "derive a configuration from a search checkpoint");
  dc->add_option("--from", d->from, "search.ckpt written by cakes search")
      ->required();
  dc->add_option("--out", d->out, "configuration file to write")->required();
  dc->add_option(
      "--target-macs",
      d->target_macs,
      "MACs budget: fraction of the 3x3x3 network (0.5) or absolute (30G)");
  dc->add_option("--target-latency", d->target_latency, "latency budget in ms")
      ->check(CLI::PositiveNumber);
  dc->add_option("--latency-table", d->table, "table.json from cakes profile");
  dc->add_option(
      "--input", d->input, "input sizes for costs, e.g. 1x3x8x224x224");
  dc->add_flag("--force", d->force, "overwrite an existing --out");
  dc->callback([d] { run_derive_command(*d); });

  auto p = std::make_shared<ProfileArgs>();
  auto* pc = app.add_subcommand(
      "profile", "measure the per-sub-kernel latency table of a network");
  pc->add_option("--net", p->net, "network")->required();
  pc->add_option(
      "--width", p->width, "network base width (0: the network's default)");
  pc->add_option("--candidates", p->candidates, "candidate sub-kernels");
  pc->add_option("--out", p->out, "table.json to write")->required();
  pc->add_option("--input", p->input, "input sizes, e.g. 1x3x8x224x224");
  pc->add_option("--num-classes", p->classes, "classes");
  pc->add_option("--in-channels", p->in_channels, "volumetric input channels");
  pc->add_option("--repeats", p->repeats, "timed runs per measurement")
      ->check(CLI::PositiveNumber);
  pc->add_option("--threads", p->threads, "LibTorch threads (0: all cores)");
  pc->add_flag("--force", p->force, "overwrite an existing --out");
  pc->callback([p] { run_profile_command(*p); });
}

} // namespace cakes::cli
