// cakes train / eval / infer: a network from --net/--op/--config, data from the
// shared data flags, the library's Trainer, metrics and sliding window.
#include "commands.h"
#include "data_options.h"
#include "dist_job.h"
#include "init_options.h"
#include "input_spec.h"
#include "net_options.h"

#include "cakes/data/msd_dataset.h"
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

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>

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
  int64_t val_every = -1; // -1: 1 when there is validation data, else 0
  InitOptions init;
  double dropout = -1;
  DistArgs dist;
};

// Validation during training: what runs, how often, and the metric best.pt
// is kept by.
struct Validation {
  std::function<std::map<std::string, double>(int64_t)> validate;
  int64_t every = 0;
  std::string metric;
};

Validation validation(
    const TrainArgs& a,
    const DatasetHandle& data,
    const DistJob& job,
    const models::Model& model) {
  Validation v;
  if (data.volumetric) {
    auto val = std::make_shared<DatasetHandle>(make_dataset(a.data, false));
    const auto* msd = dynamic_cast<const data::MsdDataset*>(val->dataset.get());
    const bool held_out = msd && msd->split().rule != "none";
    v.every = a.val_every >= 0 ? a.val_every : held_out ? 1 : 0;
    if (v.every > 0 && !held_out)
      std::printf(
          "note: %s holds no validation cases out (too few cases for "
          "--val-fraction, no 'validation' list): validating on the training "
          "cases\n",
          a.data.msd.c_str());
    v.metric = "val_dice";
    const auto window = window_of(a.data.patch);
    v.validate = [val, model, &job, window](int64_t) {
      const auto s =
          job.evaluate_volumes(model, val->dataset, window, /*overlap=*/0.5);
      std::map<std::string, double> m{{"val_dice", s.mean_foreground}};
      for (size_t c = 1; c < s.dice.size(); ++c)
        if (!std::isnan(s.dice[c]))
          m["val_dice_" + s.class_names[c]] = s.dice[c];
      return m;
    };
    return v;
  }
  const bool held_out = has_video_validation(a.data);
  if (a.val_every > 0 && !held_out)
    throw std::invalid_argument(
        "--val-every " + std::to_string(a.val_every) +
        ": no validation videos; give --frames-val-list, --videos-val-list, "
        "--videos-val-dir or --ssv2-val-list");
  v.every = a.val_every >= 0 ? a.val_every : held_out ? 1 : 0;
  v.metric = "val_top1";
  if (held_out) {
    auto val = std::make_shared<DatasetHandle>(make_dataset(a.data, false));
    v.validate = [val, model, &job](int64_t) {
      const auto s =
          job.evaluate_video(model, val->dataset, 1, job.local_batch());
      return std::map<std::string, double>{
          {"val_top1", s.top1}, {"val_top5", s.top5}};
    };
  }
  return v;
}

// "epoch 2/5: loss 0.6931, 2.1 s (0.700 s/step), val_dice 0.7123 (bright
// 0.7123), best so far -> out/best.pt" as the epoch ends (`best` empty: not
// a new best).
void print_epoch(
    const train::EpochSummary& s, int64_t epochs, const std::string& best) {
  std::string line = "epoch " + std::to_string(s.epoch + 1) + "/" +
                     std::to_string(epochs) + ": ";
  char b[160];
  std::snprintf(
      b,
      sizeof b,
      "loss %.4f, %.1f s (%.3f s/step)",
      s.mean_loss,
      s.seconds,
      s.steps ? s.seconds / double(s.steps) : 0.0);
  line += b;
  std::string per_class;
  for (const auto& [k, v] : s.metrics) {
    const bool of_class = k.rfind("val_dice_", 0) == 0;
    std::snprintf(
        b, sizeof b, "%s %.4f", (of_class ? k.substr(9) : k).c_str(), v);
    (of_class ? per_class : line) += std::string(", ") + b;
  }
  if (!per_class.empty())
    line += " (" + per_class.substr(2) + ")";
  if (!best.empty())
    line += ", best so far -> " + best;
  std::cout << line << std::endl;
}

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
  const std::string best = (fs::path(a.out_dir) / "best.pt").string();
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
    fs::remove(best);
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
  o.log_steps_every = a.log_every;
  o.parallel = job.parallel();
  const Validation v = validation(a, data, job, model);
  o.validate = v.validate;
  o.validate_every = v.every;
  o.best_checkpoint_path = best;
  o.best_metric = v.metric;
  o.on_epoch = [&](const train::EpochSummary& s, bool new_best) {
    print_epoch(s, a.epochs, new_best ? best : "");
  };
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
  trainer.fit(loader);
  if (!job.is_main())
    return;
  std::printf("checkpoint %s, log %s\n", ckpt.c_str(), log.c_str());
  if (!std::isnan(trainer.best_value()))
    std::printf(
        "best %s (epoch %lld, %s %.4f)\n",
        best.c_str(),
        (long long)trainer.best_epoch(),
        v.metric.c_str(),
        trainer.best_value());
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
    const auto* msd = dynamic_cast<const data::MsdDataset*>(data.dataset.get());
    // A line per case as it is done (stdout holds only JSON with --json).
    const auto progress = [&](const eval::CaseResult& r) {
      if (a.json)
        return;
      std::string name = "case " + std::to_string(r.index);
      if (msd)
        name = fs::path(msd->cases().at(size_t(r.index)).image)
                   .filename()
                   .string();
      std::printf(
          "case %lld/%lld %s: Dice %s (%.1f s)\n",
          (long long)r.index + 1,
          (long long)r.total,
          name.c_str(),
          fmt_dice(r.mean_foreground).c_str(),
          r.seconds);
      std::fflush(stdout);
    };
    const auto s =
        eval::evaluate_volumes(model, *data.dataset, w, a.overlap, progress);
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
    // Progress: a redrawn count on a terminal, else a line per tenth.
    const bool tty = isatty(fileno(stdout)) != 0;
    const auto t0 = std::chrono::steady_clock::now();
    int64_t tenths = 0;
    const auto progress = [&](int64_t done, int64_t total) {
      if (a.json || done == total)
        return;
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
      if (tty) {
        std::printf(
            "\rvideos %lld/%lld (%.0f s)\x1b[K",
            (long long)done,
            (long long)total,
            secs);
      } else if (done * 10 / total > tenths) {
        tenths = done * 10 / total;
        std::printf(
            "videos %lld/%lld (%.1f s)\n",
            (long long)done,
            (long long)total,
            secs);
      }
      std::fflush(stdout);
    };
    const auto s =
        eval::evaluate_video(model, *data.dataset, a.clips, a.batch, progress);
    if (tty && !a.json && s.videos > a.batch)
      std::printf("\r\x1b[K");
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

bool is_list_file(const std::string& p) {
  const std::string ext = fs::path(p).extension().string();
  return ext == ".txt" || ext == ".lst" || ext == ".list";
}

// The files --input names: itself; a folder's videos or NIfTI volumes (other
// files are ignored), sorted by name; or a list file (.txt, .lst, .list): one
// path per line, relative to the list's folder, blank lines and #-comments
// skipped. Videos and volumes are not mixed.
std::vector<std::string> input_files(const std::string& input) {
  std::vector<std::string> files;
  if (fs::is_directory(input)) {
    for (const auto& e : fs::directory_iterator(input))
      if (e.is_regular_file() &&
          (is_nifti(e.path().string()) ||
           data::is_video_file_name(e.path().filename().string())))
        files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty())
      throw std::invalid_argument(
          "--input " + input + ": no videos or NIfTI volumes in the folder");
  } else if (is_list_file(input)) {
    std::ifstream f(input);
    if (!f)
      throw std::invalid_argument("--input " + input + ": cannot read");
    const fs::path base = fs::path(input).parent_path();
    for (std::string line; std::getline(f, line);) {
      const auto b = line.find_first_not_of(" \t\r");
      if (b == std::string::npos || line[b] == '#')
        continue;
      const std::string p =
          line.substr(b, line.find_last_not_of(" \t\r") + 1 - b);
      files.push_back(
          fs::path(p).is_absolute() ? p
                                    : (base / p).lexically_normal().string());
    }
    if (files.empty())
      throw std::invalid_argument("--input " + input + ": lists no files");
  } else {
    files.push_back(input);
  }
  const auto volumes = std::count_if(files.begin(), files.end(), is_nifti);
  if (volumes != 0 && volumes != int64_t(files.size()))
    throw std::invalid_argument(
        "--input " + input + " mixes videos and NIfTI volumes: give one kind");
  return files;
}

// Runs `work` on input i of n; an error names the input when it does not
// already.
template <class F> void for_input(const std::string& path, F&& work) {
  try {
    work();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.find(path) != std::string::npos)
      throw;
    throw std::runtime_error(path + ": " + what);
  }
}

// "case 2/5 " before each of many inputs' lines; "" for one.
std::string counter(const char* word, size_t i, size_t n, bool many) {
  return many ? std::string(word) + " " + std::to_string(i + 1) + "/" +
                    std::to_string(n) + " "
              : "";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos)
    return s;
  std::string q = "\"";
  for (const char c : s)
    q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// Volumes: one label NIfTI per input, on the input's grid with its affine,
// through the intensity and spacing the network was trained with.
void infer_volumes(
    const InferArgs& a,
    const CLI::App* cmd,
    const std::vector<std::string>& files,
    bool many,
    const nlohmann::json& section,
    const std::vector<std::string>& names,
    int64_t classes,
    const std::function<models::Model(int64_t)>& load) {
  if (a.output.empty())
    throw std::invalid_argument(
        many ? "volumes need --output DIR for their label NIfTIs"
             : "a volume needs --output FILE.nii.gz for its labels");
  // Every output checked before the first is written.
  std::vector<std::string> outputs;
  if (many) {
    if (fs::exists(a.output) && !fs::is_directory(a.output))
      throw std::invalid_argument(
          "--output " + a.output +
          " is a file: many volumes need a folder for their labels");
    std::set<std::string> seen;
    for (const auto& f : files) {
      const std::string name = fs::path(f).filename().string();
      if (!seen.insert(name).second)
        throw std::invalid_argument(
            "two inputs are named " + name + ": their labels would share " +
            (fs::path(a.output) / name).string());
      outputs.push_back((fs::path(a.output) / name).string());
    }
  } else {
    outputs.push_back(a.output);
  }
  for (const auto& o : outputs) {
    refuse_input_as_output(o, files);
    refuse_overwrite(o, a.force);
  }
  if (many)
    fs::create_directories(a.output);
  std::optional<models::Model> model;
  eval::SlidingWindowOptions sw;
  sw.window = window_of(a.window);
  sw.overlap = a.overlap;
  for (size_t i = 0; i < files.size(); ++i) {
    for_input(files[i], [&] {
      const auto t0 = std::chrono::steady_clock::now();
      const auto vol = data::read_nifti(files[i]);
      // Normalised and resampled as training did (input_spec.h).
      const at::Tensor x = volume_input(vol, section, cmd, a.modality);
      if (!model) {
        model = load(x.size(0));
        model->module->eval();
      }
      const auto labels = eval::sliding_window_labels(
          x, [&](const at::Tensor& w) { return model->forward(w); }, sw);
      data::write_labels_on_grid_of(outputs[i], labels, vol);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
      const auto s = vol.data.sizes();
      std::printf(
          "%s%s -> %s (%lldx%lldx%lld, affine of the input, %.1f s)\n",
          counter("case", i, files.size(), many).c_str(),
          files[i].c_str(),
          outputs[i].c_str(),
          (long long)s[0],
          (long long)s[1],
          (long long)s[2],
          seconds);
      if (!many) {
        const auto counts =
            torch::bincount(labels.flatten(), {}, classes).contiguous();
        for (int64_t c = 0; c < classes; ++c)
          std::printf(
              "  %-20s %lld voxels (at the network's spacing)\n",
              names.empty() ? std::to_string(c).c_str() : names[c].c_str(),
              (long long)counts[c].item<int64_t>());
      }
      std::fflush(stdout);
    });
  }
}

// Videos: the top classes of each; one input may write JSON, several write
// one CSV (path, then class and probability of each rank).
void infer_videos(
    const InferArgs& a,
    const std::vector<std::string>& files,
    bool many,
    const std::vector<std::string>& names,
    int64_t classes,
    const std::function<models::Model(int64_t)>& load) {
  const bool csv = fs::path(a.output).extension() == ".csv";
  if (many && !a.output.empty() && !csv)
    throw std::invalid_argument(
        "--output " + a.output +
        ": several videos are written as one CSV; name it *.csv");
  if (!a.output.empty()) {
    refuse_input_as_output(a.output, files);
    refuse_overwrite(a.output, a.force);
  }
  auto model = load(3);
  model.module->eval();
  data::ClipOptions clip;
  clip.num_segments = a.frames;
  clip.training = false;
  clip.crop_size = a.size;
  clip.scale_size = a.scale > 0 ? a.scale : a.size * 8 / 7;
  const int64_t k = std::min(a.top, classes);
  std::string table = "path";
  for (int64_t r = 1; r <= k; ++r)
    table +=
        ",class_" + std::to_string(r) + ",probability_" + std::to_string(r);
  table += "\n";
  nlohmann::ordered_json j;
  for (size_t i = 0; i < files.size(); ++i) {
    for_input(files[i], [&] {
      data::VideoReader reader(files[i], clip.scale_size);
      const auto idx =
          data::tsn_segment_indices(reader.frame_count(), a.frames, 1, nullptr);
      std::mt19937_64 rng(0);
      const auto sample =
          data::make_clip_sample(reader.read_frames(idx), 0, clip, rng);
      const auto prob =
          torch::softmax(model.forward(sample.input.unsqueeze(0)), 1)[0];
      const auto top = prob.topk(k);
      j = nlohmann::ordered_json();
      j["input"] = files[i];
      table += csv_field(files[i]);
      std::printf(
          "%s%s:\n",
          counter("video", i, files.size(), many).c_str(),
          files[i].c_str());
      for (int64_t r = 0; r < k; ++r) {
        const int64_t c = std::get<1>(top)[r].item<int64_t>();
        const double p = std::get<0>(top)[r].item<double>();
        const std::string name = names.empty() ? std::to_string(c) : names[c];
        std::printf("  %6.2f%%  %s\n", 100 * p, name.c_str());
        j["top"].push_back({{"class", c}, {"name", name}, {"probability", p}});
        char b[32];
        std::snprintf(b, sizeof b, "%.6f", p);
        table += "," + csv_field(name) + "," + b;
      }
      table += "\n";
      std::fflush(stdout);
    });
  }
  if (a.output.empty())
    return;
  // Written whole once every input is done: a run stopped by a bad input
  // leaves no partial table.
  train::write_file_atomically(a.output, csv ? table : j.dump(1) + "\n");
  if (many)
    std::printf("%zu rows -> %s\n", files.size(), a.output.c_str());
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
  const auto files = input_files(a.input);
  const bool many = files.size() > 1 || files[0] != a.input;
  const auto load = [&](int64_t in_channels) {
    return checkpoint_model(
        a.checkpoint,
        resolve_network(a.net, op_given, classes, in_channels),
        net_given,
        classes);
  };
  torch::NoGradGuard no_grad;
  if (is_nifti(files[0]))
    infer_volumes(a, cmd, files, many, section, names, classes, load);
  else
    infer_videos(a, files, many, names, classes, load);
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
  c->add_option(
      "--val-every",
      a->val_every,
      "validate every N epochs and after the last (0 = never; default 1 "
      "when there is validation data: a video val list/folder, or volumes "
      "held out by --val-fraction or dataset.json's 'validation'); best.pt "
      "keeps the epoch with the best val_top1 / val_dice");
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
      "infer",
      "videos -> top classes (JSON, or CSV for many); NIfTI volumes -> label "
      "NIfTIs on their own grids");
  add_net_options(c, a->net);
  c->add_option(
       "--checkpoint", a->checkpoint, "checkpoint written by cakes train")
      ->required();
  c->add_option(
       "--input",
       a->input,
       "a video file or NIfTI volume; or a folder of them, or a list file "
       "(.txt, .lst, .list: one path per line, relative to the list)")
      ->required();
  c->add_option(
      "--output",
      a->output,
      "one input: label NIfTI (volume) or JSON (video); several: a folder "
      "for the label NIfTIs (same file names) or one CSV (videos)");
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
  c->add_flag("--force", a->force, "overwrite --output (every file of it)");
  c->add_option("--threads", a->threads, "threads (0 = all cores)");
  c->callback([a, c] { run_infer(*a, c); });
}

} // namespace cakes::cli
