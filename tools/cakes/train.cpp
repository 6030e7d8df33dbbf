// cakes train / eval / infer: a network from --net/--op/--config, data from the
// shared data flags, the library's Trainer, metrics and sliding window.
#include "commands.h"
#include "data_options.h"
#include "dist_job.h"
#include "init_options.h"
#include "input_spec.h"
#include "net_options.h"

#include "cakes/data/nifti.h"
#include "cakes/data/resample.h"
#include "cakes/data/transforms.h"
#include "cakes/data/video_reader.h"
#include "cakes/eval/evaluate.h"
#include "cakes/eval/sliding_window.h"
#include "cakes/train/checkpoint.h"
#include "cakes/train/losses.h"
#include "cakes/train/trainer.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

namespace fs = std::filesystem;

namespace cakes::cli {
namespace {

std::array<int64_t, 3> window_of(const std::vector<int64_t>& w) {
  if (w.size() != 3)
    throw std::invalid_argument("--window needs three sizes D H W");
  return {w[0], w[1], w[2]};
}

std::string fmt_dice(double d) {
  if (std::isnan(d))
    return "absent";
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", d);
  return b;
}

nlohmann::ordered_json volume_json(const eval::VolumeScores& s) {
  nlohmann::ordered_json j;
  j["cases"] = s.cases;
  for (size_t c = 0; c < s.dice.size(); ++c)
    j["dice"][s.class_names.at(c)] = std::isnan(s.dice[c])
                                         ? nlohmann::ordered_json()
                                         : nlohmann::ordered_json(s.dice[c]);
  j["mean_dice_foreground"] = s.mean_foreground;
  return j;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f)
    throw std::runtime_error(path + ": cannot write");
}

// ---- train -----------------------------------------------------------------

struct TrainArgs {
  NetOptions net;
  DataOptions data;
  int64_t epochs = 1, batch = 8;
  double lr = 0.01, warmup = 0, clip = 0, weight_decay = 3e-4;
  std::string optimizer = "sgd", schedule = "cosine";
  std::vector<int64_t> milestones;
  int workers = 2;
  uint64_t seed = 0;
  std::string out_dir;
  bool resume = false, force = false, reschedule = false;
  int threads = 0;
  int64_t log_every = 10;
  InitOptions init;
  double dropout = -1;
  DistArgs dist;
};

void run_train(const TrainArgs& a, bool op_given, bool net_given) {
  set_threads(a.threads);
  torch::manual_seed(a.seed);
  DistJob job(a.dist, a.batch);
  const auto data = make_dataset(a.data, /*training=*/true);
  const auto wanted =
      resolve_network(a.net, op_given, data.num_classes, data.in_channels);
  // --init: the network and weights the file gives (init_options.h), read
  // before waiting for the other ranks so that a bad file fails at once.
  std::optional<models::Model> initial;
  if (!a.init.file.empty())
    initial = initial_model(a.init, wanted, net_given);

  fs::create_directories(a.out_dir);
  const std::string ckpt = (fs::path(a.out_dir) / "checkpoint.pt").string();
  const std::string log = (fs::path(a.out_dir) / "log.jsonl").string();
  if (a.resume && !fs::exists(ckpt))
    throw std::invalid_argument("--resume: no checkpoint at " + ckpt);
  const bool replace = !a.resume && fs::exists(ckpt);
  if (replace && !a.force)
    throw std::invalid_argument(
        ckpt +
        " exists: give --resume to continue it or --force to start over");
  // The flags are checked: only now wait for the other ranks.
  job.join();
  const auto options = job.build_options();
  auto model = initial ? *initial : models::build(wanted, options);
  // With --sync-bn the network from --init is built again with the job's
  // norm (synchronised BatchNorm), holding the same weights.
  if (initial && options.norm)
    model = rebuilt(
        *initial,
        initial->spec,
        options,
        "--init " + a.init.file,
        /*classifier_may_differ=*/false);
  apply_dropout(model, a.dropout);
  if (replace && job.is_main()) {
    // --force replaces the old run only once the data reads: one sample
    // (frames decoded, volume loaded) must come out first. The checkpoint is
    // then replaced atomically by the first new one.
    std::mt19937_64 probe(a.seed);
    data.dataset->get(0, probe);
    fs::remove(log);
  }

  train::TrainerOptions o;
  o.epochs = a.epochs;
  o.optimizer.kind = train::parse_optimizer_kind(a.optimizer);
  o.optimizer.weight_decay = a.weight_decay;
  o.schedule.kind = train::parse_schedule_kind(a.schedule);
  o.schedule.base_lr = a.lr;
  o.schedule.warmup_epochs = a.warmup;
  o.schedule.milestones = a.milestones;
  o.schedule.total_epochs = a.epochs;
  o.allow_schedule_change = a.reschedule;
  o.clip_grad_norm = a.clip;
  o.checkpoint_path = ckpt;
  o.log_path = log;
  o.checkpoint_sections["input"] = input_section(a.data, data);
  o.progress = &std::cout;
  o.progress_is_terminal = isatty(fileno(stdout)) != 0;
  o.progress_every = a.log_every;
  o.parallel = job.parallel();
  std::shared_ptr<DatasetHandle> val;
  if (has_video_validation(a.data) && !data.volumetric) {
    val = std::make_shared<DatasetHandle>(make_dataset(a.data, false));
    o.validate = [val, model, &job](int64_t) {
      const auto s =
          job.evaluate_video(model, val->dataset, 1, job.local_batch());
      return std::map<std::string, double>{
          {"val_top1", s.top1}, {"val_top5", s.top5}};
    };
  }
  const train::LossFn loss = data.volumetric
                                 ? train::LossFn(train::dice_cross_entropy)
                                 : train::LossFn(train::cross_entropy);
  train::Trainer trainer(model, loss, o);
  if (a.resume) {
    trainer.resume(ckpt);
    if (job.is_main())
      std::cout << "resuming " << ckpt << " after epoch " << trainer.epoch()
                << "\n";
  }
  train::LoaderOptions lo;
  lo.batch_size = job.local_batch();
  lo.num_workers = a.workers;
  lo.seed = a.seed;
  train::Loader loader(
      data.dataset, lo, job.sampler(data.dataset->size(), a.seed));
  const std::string network = model.spec.describe();
  if (job.is_main()) {
    std::cout << "training " << network.substr(0, 120)
              << (network.size() > 120 ? "..." : "") << " on "
              << data.dataset->describe() << ", " << a.epochs << " epochs of "
              << loader.batches_in_epoch(0) << " steps";
    if (job.distributed())
      std::cout << " per rank (" << job.world_size() << " processes x batch "
                << job.local_batch() << " = global batch " << a.batch << ")";
    std::cout << "\n" << std::flush;
  }
  const auto summaries = trainer.fit(loader);
  if (!job.is_main())
    return;
  for (const auto& s : summaries) {
    std::printf(
        "epoch %lld: loss %.4f, %.1f s (%.3f s/step)",
        (long long)s.epoch + 1,
        s.mean_loss,
        s.seconds,
        s.steps ? s.seconds / double(s.steps) : 0.0);
    for (const auto& [k, v] : s.metrics)
      std::printf(", %s %.4f", k.c_str(), v);
    std::printf("\n");
  }
  std::printf("checkpoint %s, log %s\n", ckpt.c_str(), log.c_str());
}

// ---- eval ------------------------------------------------------------------

struct EvalArgs {
  NetOptions net;
  DataOptions data;
  std::string checkpoint, out;
  int64_t clips = 1, batch = 8;
  std::vector<int64_t> window;
  double overlap = 0.5;
  bool json = false, force = false;
  int threads = 0;
};

void run_eval(const EvalArgs& args, const CLI::App* cmd) {
  EvalArgs a = args;
  set_threads(a.threads);
  if (!a.out.empty())
    refuse_overwrite(a.out, a.force);
  // The input the network was trained on, unless given (input_spec.h).
  apply_input_section(read_input_section(a.checkpoint), cmd, a.data);
  const auto data = make_dataset(a.data, /*training=*/false);
  auto model = checkpoint_model(
      a.checkpoint,
      resolve_network(
          a.net, cmd->count("--op") > 0, data.num_classes, data.in_channels),
      net_flags_given(cmd) > 0,
      data.num_classes);
  nlohmann::ordered_json j;
  j["checkpoint"] = a.checkpoint;
  if (data.volumetric) {
    const auto w = window_of(a.window.empty() ? a.data.patch : a.window);
    const auto s = eval::evaluate_volumes(model, *data.dataset, w, a.overlap);
    j.update(volume_json(s));
    if (!a.json) {
      std::printf(
          "%lld case(s), sliding window %lldx%lldx%lld, overlap %.2f\n",
          (long long)s.cases,
          (long long)w[0],
          (long long)w[1],
          (long long)w[2],
          a.overlap);
      for (size_t c = 0; c < s.dice.size(); ++c)
        std::printf(
            "  dice %-20s %s\n",
            s.class_names[c].c_str(),
            fmt_dice(s.dice[c]).c_str());
      std::printf(
          "mean Dice (foreground classes) %s\n",
          fmt_dice(s.mean_foreground).c_str());
    }
  } else {
    const auto s = eval::evaluate_video(model, *data.dataset, a.clips, a.batch);
    j["videos"] = s.videos;
    j["clips"] = a.clips;
    j["top1"] = s.top1;
    j["top5"] = s.top5;
    if (!a.json)
      std::printf(
          "%lld videos, %lld clip(s): top-1 %.2f%%, top-5 %.2f%%\n",
          (long long)s.videos,
          (long long)a.clips,
          100 * s.top1,
          100 * s.top5);
  }
  if (a.json)
    std::cout << j.dump(1) << "\n";
  if (!a.out.empty())
    write_text(a.out, j.dump(1) + "\n");
}

// ---- infer -----------------------------------------------------------------

struct InferArgs {
  NetOptions net;
  std::string checkpoint, input, output, categories, modality = "MRI";
  int64_t num_classes = 0, top = 5, frames = 8, size = 224, scale = 0;
  std::vector<int64_t> window{64, 64, 64};
  double overlap = 0.5;
  bool force = false;
  int threads = 0;
};

bool is_nifti(const std::string& p) {
  const auto ends = [&](const std::string& s) {
    return p.size() >= s.size() &&
           p.compare(p.size() - s.size(), s.size(), s) == 0;
  };
  return ends(".nii") || ends(".nii.gz") || ends(".hdr") || ends(".img");
}

void run_infer(const InferArgs& args, CLI::App* cmd) {
  InferArgs a = args;
  const bool op_given = cmd->count("--op") > 0;
  const bool net_given = net_flags_given(cmd) > 0;
  set_threads(a.threads);
  // What the network was trained on, unless given (input_spec.h).
  const auto section = read_input_section(a.checkpoint);
  take_recorded(section, "frames", cmd, "--frames", a.frames, false);
  take_recorded(section, "size", cmd, "--size", a.size, true);
  take_recorded(section, "scale", cmd, "--scale", a.scale, true);
  take_recorded(section, "patch", cmd, "--window", a.window, false);
  std::vector<std::string> names;
  if (!a.categories.empty())
    names = data::read_category_file(a.categories);
  else if (
      a.num_classes == 0 && section.is_object() &&
      section.contains("class_names"))
    take_recorded(section, "class_names", cmd, "--categories", names, false);
  int64_t classes = a.num_classes > 0 ? a.num_classes : int64_t(names.size());
  if (classes < 1 && !net_given)
    classes = train::read_checkpoint_meta(a.checkpoint).network.num_classes;
  if (classes < 1)
    throw std::invalid_argument("give --categories or --num-classes");
  if (!names.empty() && int64_t(names.size()) != classes)
    throw std::invalid_argument(
        a.categories + " lists " + std::to_string(names.size()) +
        " classes, --num-classes says " + std::to_string(classes));
  torch::NoGradGuard no_grad;
  if (is_nifti(a.input)) {
    if (a.output.empty())
      throw std::invalid_argument(
          "a volume needs --output FILE.nii.gz for its labels");
    refuse_overwrite(a.output, a.force);
    const auto vol = data::read_nifti(a.input);
    const auto x = volume_input(vol, section, cmd, a.modality);
    auto model = checkpoint_model(
        a.checkpoint,
        resolve_network(a.net, op_given, classes, x.size(0)),
        net_given,
        classes);
    model.module->eval();
    eval::SlidingWindowOptions sw;
    sw.window = window_of(a.window);
    sw.overlap = a.overlap;
    const auto labels = eval::sliding_window_labels(
        x.contiguous(),
        [&](const at::Tensor& w) { return model.forward(w); },
        sw);
    data::write_labels_on_grid_of(a.output, labels, vol);
    const auto counts = torch::bincount(labels.flatten(), {}, classes);
    std::printf(
        "%s -> %s (%lldx%lldx%lld, affine of the input)\n",
        a.input.c_str(),
        a.output.c_str(),
        (long long)labels.size(0),
        (long long)labels.size(1),
        (long long)labels.size(2));
    for (int64_t c = 0; c < classes; ++c)
      std::printf(
          "  %-20s %lld voxels\n",
          names.empty() ? std::to_string(c).c_str() : names[c].c_str(),
          (long long)counts[c].item<int64_t>());
    return;
  }
  if (!a.output.empty())
    refuse_overwrite(a.output, a.force);
  auto model = checkpoint_model(
      a.checkpoint,
      resolve_network(a.net, op_given, classes, 3),
      net_given,
      classes);
  model.module->eval();
  data::ClipOptions clip;
  clip.num_segments = a.frames;
  clip.training = false;
  clip.crop_size = a.size;
  clip.scale_size = a.scale > 0 ? a.scale : a.size * 8 / 7;
  data::VideoReader reader(a.input, clip.scale_size);
  const auto idx =
      data::tsn_segment_indices(reader.frame_count(), a.frames, 1, nullptr);
  std::mt19937_64 rng(0);
  const auto sample =
      data::make_clip_sample(reader.read_frames(idx), 0, clip, rng);
  const auto prob =
      torch::softmax(model.forward(sample.input.unsqueeze(0)), 1)[0];
  const auto top = prob.topk(std::min(a.top, classes));
  nlohmann::ordered_json j;
  j["input"] = a.input;
  std::printf("%s:\n", a.input.c_str());
  for (int64_t i = 0; i < std::get<0>(top).size(0); ++i) {
    const int64_t c = std::get<1>(top)[i].item<int64_t>();
    const double p = std::get<0>(top)[i].item<double>();
    const std::string name = names.empty() ? std::to_string(c) : names[c];
    std::printf("  %6.2f%%  %s\n", 100 * p, name.c_str());
    j["top"].push_back({{"class", c}, {"name", name}, {"probability", p}});
  }
  if (!a.output.empty())
    write_text(a.output, j.dump(1) + "\n");
}

} // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* c = app.add_subcommand(
      "train", "train a network; checkpoint and log in --out-dir");
  add_net_options(c, a->net);
  add_data_options(c, a->data);
  c->add_option("--epochs", a->epochs, "epochs")->check(CLI::PositiveNumber);
  c->add_option("--lr", a->lr, "base learning rate");
  c->add_option(
       "--batch",
       a->batch,
       "batch size of one optimizer step; with several processes the global "
       "batch, split evenly over them (--lr is for this batch)")
      ->check(CLI::PositiveNumber);
  c->add_option("--optimizer", a->optimizer, "sgd | adamw")
      ->check(CLI::IsMember({"sgd", "adamw"}));
  c->add_option("--warmup", a->warmup, "linear warm-up epochs");
  c->add_option("--schedule", a->schedule, "step | cosine | constant")
      ->check(CLI::IsMember({"step", "cosine", "constant"}));
  c->add_option(
      "--milestones", a->milestones, "step schedule: epochs where lr x0.1");
  c->add_option("--clip", a->clip, "gradient-norm clipping (0 = off)");
  c->add_option(
      "--weight-decay", a->weight_decay, "weight decay (not on BN, biases)");
  c->add_option("--workers", a->workers, "loader threads");
  c->add_option("--seed", a->seed, "seed of weights and data order");
  c->add_option("--out-dir", a->out_dir, "checkpoint.pt and log.jsonl go here")
      ->required();
  auto* resume = c->add_flag(
      "--resume", a->resume, "continue the checkpoint in --out-dir");
  c->add_flag(
       "--reschedule",
       a->reschedule,
       "with --resume: follow this command's schedule flags (--epochs, --lr, "
       "--schedule, --warmup, --milestones) from the step reached, when they "
       "differ from the run's")
      ->needs(resume);
  c->add_flag(
      "--force", a->force, "start over even if --out-dir holds a checkpoint");
  c->add_option("--threads", a->threads, "threads (0 = all cores)");
  c->add_option(
      "--log-every",
      a->log_every,
      "progress line every N steps (not a terminal)");
  add_init_flags(c, a->init);
  add_dropout_option(c, a->dropout);
  add_dist_options(c, a->dist);
  c->callback(
      [a, c] { run_train(*a, c->count("--op") > 0, net_flags_given(c) > 0); });
}

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand(
      "eval",
      "top-1/top-5 (video) or per-class Dice (volumes) of a checkpoint");
  add_net_options(c, a->net);
  add_data_options(c, a->data);
  c->add_option(
       "--checkpoint", a->checkpoint, "checkpoint written by cakes train")
      ->required();
  c->add_option("--clips", a->clips, "clips per video, logits averaged")
      ->check(CLI::PositiveNumber);
  c->add_option("--batch", a->batch, "videos per forward pass")
      ->check(CLI::PositiveNumber);
  c->add_option(
       "--window", a->window, "sliding window D H W (default: --patch)")
      ->expected(3);
  c->add_option("--overlap", a->overlap, "sliding-window overlap in [0, 1)");
  c->add_flag("--json", a->json, "print JSON");
  c->add_option("--out", a->out, "also write the metrics as JSON here");
  c->add_flag("--force", a->force, "overwrite --out");
  c->add_option("--threads", a->threads, "threads (0 = all cores)");
  c->callback([a, c] { run_eval(*a, c); });
}

void add_infer(CLI::App& app) {
  auto a = std::make_shared<InferArgs>();
  auto* c = app.add_subcommand(
      "infer", "video file -> top classes; NIfTI volume -> label NIfTI");
  add_net_options(c, a->net);
  c->add_option(
       "--checkpoint", a->checkpoint, "checkpoint written by cakes train")
      ->required();
  c->add_option("--input", a->input, "video file or NIfTI volume")->required();
  c->add_option("--output", a->output, "label NIfTI (volume) or JSON (video)");
  c->add_option("--categories", a->categories, "class names, one per line");
  c->add_option(
      "--num-classes", a->num_classes, "classes (instead of --categories)");
  c->add_option("--top", a->top, "classes shown (video)")
      ->check(CLI::PositiveNumber);
  c->add_option("--frames", a->frames, "frames per clip (video)")
      ->check(CLI::PositiveNumber);
  c->add_option("--size", a->size, "crop size (video)")
      ->check(CLI::PositiveNumber);
  c->add_option(
      "--scale", a->scale, "short side before the crop (0: size*8/7)");
  c->add_option(
       "--modality",
       a->modality,
       "volume intensity: MRI (z-score) | CT (window)")
      ->check(CLI::IsMember({"MRI", "CT"}));
  c->add_option("--window", a->window, "sliding window D H W")->expected(3);
  c->add_option("--overlap", a->overlap, "sliding-window overlap");
  c->add_flag("--force", a->force, "overwrite --output");
  c->add_option("--threads", a->threads, "threads (0 = all cores)");
  c->callback([a, c] { run_infer(*a, c); });
}

} // namespace cakes::cli
