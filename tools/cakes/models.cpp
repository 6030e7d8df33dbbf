// cakes info: per-layer cost of a network; cakes bench model: its latency next
// to the 3D variant's, with the time ratio beside the MAC ratio.
#include "commands.h"
#include "init_options.h"
#include "input_spec.h"
#include "net_options.h"

#include "cakes/models/model.h"
#include "cakes/ops/profile.h"
#include "cakes/train/checkpoint.h"
#include "cakes/util/timing.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

namespace cakes::cli {
namespace {

struct NetArgs {
  NetOptions net;
  std::string checkpoint;
  std::string input; // NxCxTxHxW, instead of --batch/--frames/--size
  int64_t frames = 8, size = 224, classes = 174, batch = 1, in_channels = 1;
};

void add_net_args(CLI::App* c, NetArgs& a) {
  add_net_options(c, a.net);
  c->add_option("--frames", a.frames, "frames T (video)")
      ->check(CLI::PositiveNumber);
  c->add_option("--size", a.size, "spatial size (video H=W; volumes D=H=W)")
      ->check(CLI::PositiveNumber);
  c->add_option("--classes", a.classes, "classes")->check(CLI::PositiveNumber);
  c->add_option("--batch", a.batch, "batch size")->check(CLI::PositiveNumber);
  c->add_option("--in-channels", a.in_channels, "input channels (volumetric)")
      ->check(CLI::PositiveNumber);
  c->add_option(
      "--checkpoint",
      a.checkpoint,
      "the network (and frames, size) a checkpoint records (instead of "
      "--net/--op/...)");
  // Volumes are rarely cubes (the demo's MRI half is 64x96x64): --size alone
  // cannot state their cost.
  auto* input = c->add_option(
      "--input",
      a.input,
      "whole input NxCxTxHxW (video) or NxCxDxHxW (volumes), e.g. "
      "1x1x64x96x64, instead of --batch/--frames/--size");
  input->excludes(c->get_option("--batch"))
      ->excludes(c->get_option("--frames"))
      ->excludes(c->get_option("--size"));
}

// The flags' network, or the checkpoint's with its input (input_spec.h):
// frames and size taken unless given, another size refused.
models::NetworkSpec network_of(NetArgs& a, const CLI::App* c) {
  const bool op_given = c->count("--op") > 0;
  if (a.checkpoint.empty()) {
    auto spec = resolve_network(a.net, op_given, a.classes, a.in_channels);
    a.net.net = spec.network;
    return spec;
  }
  const auto spec = train::read_checkpoint_meta(a.checkpoint).network;
  if (net_flags_given(c) > 0) {
    const auto flags =
        resolve_network(a.net, op_given, spec.num_classes, spec.in_channels);
    const auto diff = models::difference(spec, flags);
    if (!diff.empty())
      throw std::invalid_argument(
          a.checkpoint + " holds another network than the flags ask for (" +
          diff + ")");
  }
  const auto section = read_input_section(a.checkpoint);
  take_recorded(section, "frames", c, "--frames", a.frames, false);
  take_recorded(section, "size", c, "--size", a.size, true);
  a.net.net = spec.network;
  return spec;
}

std::vector<int64_t> input_sizes(const NetArgs& a, const models::Model& m) {
  if (!a.input.empty()) {
    const auto in = parse_dims(a.input, "--input");
    const auto channels = m.input_sizes(1, 1, 1, 1)[1];
    if (in.size() != 5 || in[1] != channels)
      throw std::invalid_argument(
          "--input: need N x " + std::to_string(channels) +
          " x T/D x H x W for this network, got '" + a.input + "'");
    return in;
  }
  return m.input_sizes(
      a.batch, m.spec.video() ? a.frames : a.size, a.size, a.size);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r;
  for (auto v : s)
    r += (r.empty() ? "" : "x") + std::to_string(v);
  return r;
}

} // namespace

void add_info(CLI::App& app) {
  auto a = std::make_shared<NetArgs>();
  auto json = std::make_shared<bool>(false);
  auto* c =
      app.add_subcommand("info", "per-layer MACs and parameters of a network");
  add_net_args(c, *a);
  c->add_flag("--json", *json, "print JSON");
  c->callback([args = a, json, c] {
    auto a = std::make_shared<NetArgs>(*args);
    const auto model = models::build(network_of(*a, c));
    const auto in = input_sizes(*a, model);
    const auto r = model.cost(in);
    if (*json) {
      nlohmann::ordered_json j;
      j["network"] = a->net.net;
      j["operation"] = op_label(a->net, model.spec);
      j["input"] = in;
      for (const auto& l : r.layers)
        j["layers"].push_back(
            {{"name", l.name},
             {"operation", l.operation},
             {"output_shape", l.output_shape},
             {"macs", l.macs},
             {"params", l.params}});
      j["total_macs"] = r.total_macs();
      j["total_params"] = r.total_params();
      std::cout << j.dump(1) << "\n";
      return;
    }
    std::printf(
        "%s, op %s, input %s\n\n%-22s %-34s %-18s %12s %10s\n",
        a->net.net.c_str(),
        op_label(a->net, model.spec).c_str(),
        shape_str(in).c_str(),
        "layer",
        "operation",
        "output",
        "MACs",
        "params");
    for (const auto& l : r.layers)
      std::printf(
          "%-22s %-34s %-18s %12lld %10lld\n",
          l.name.c_str(),
          l.operation.c_str(),
          shape_str(l.output_shape).c_str(),
          (long long)l.macs,
          (long long)l.params);
    std::printf(
        "\ntotal: %.2f GMACs (convolutions and classifier), %.2f M parameters "
        "(incl. BatchNorm scale/shift and classifier)\n",
        r.total_macs() / 1e9,
        r.total_params() / 1e6);
  });
}

void add_bench_model(CLI::App& bench) {
  auto a = std::make_shared<NetArgs>();
  struct Flags {
    bool train = false, json = false, no_fold = false, per_layer = false;
    int threads = 0, warmup = 2, repeats = 5;
    std::string engine = "auto";
  };
  auto f = std::make_shared<Flags>();
  auto* c = bench.add_subcommand(
      "model",
      "network latency next to its 3D variant (time ratio vs MAC ratio)");
  add_net_args(c, *a);
  c->add_flag(
      "--train",
      f->train,
      "also time a training step (forward, backward, SGD)");
  c->add_flag("--no-fold", f->no_fold, "keep BatchNorm separate at inference");
  c->add_option("--threads", f->threads, "threads (0 = all cores)");
  c->add_option("--warmup", f->warmup, "warm-up runs");
  c->add_option("--repeats", f->repeats, "timed runs (median reported)")
      ->check(CLI::PositiveNumber);
  c->add_flag("--json", f->json, "print JSON");
  c->add_flag(
      "--per-layer",
      f->per_layer,
      "then time every convolution of the requested network (not the 3D "
      "one): forward, backward, % of peak, time outside convolutions");
  add_engine_option(c, f->engine);
  c->callback([args = a, f, c] {
    auto a = std::make_shared<NetArgs>(*args);
    set_threads(f->threads);
    apply_engine(f->engine);
    torch::manual_seed(0);
    const auto spec = network_of(*a, c);
    models::NetworkSpec base = spec;
    base.op = OpSpec{"conv3d", {}, {}};
    std::vector<models::NetworkSpec> variants = {spec, base};
    std::vector<std::string> labels = {op_label(a->net, spec), "conv3d"};

    std::vector<models::Model> nets;
    std::vector<int64_t> macs;
    for (const auto& v : variants) {
      nets.push_back(models::build(v));
      macs.push_back(
          nets.back().cost(input_sizes(*a, nets.back())).total_macs());
    }
    const auto in_sizes = input_sizes(*a, nets[0]);
    const auto x = torch::randn(in_sizes);
    std::vector<std::function<void()>> infer;
    for (auto& n : nets) {
      n.module->eval();
      if (!f->no_fold)
        n.fold_batchnorm();
      infer.push_back([&n, &x] {
        torch::NoGradGuard ng;
        n.forward(x);
      });
    }
    const double peak = ops::fma_peak_gflops();
    const auto ti = time_interleaved(infer, f->warmup, f->repeats);
    // --per-layer: the requested network again, step by step, recording its
    // convolution calls.
    auto per_layer = [&](const std::string& what,
                         const models::Model& m,
                         const std::function<void()>& step) {
      std::vector<LayerRow> rows;
      for (const auto& l : m.cost(in_sizes).layers)
        rows.push_back({l.name, l.operation, l.macs});
      std::vector<std::vector<ops::ConvCall>> calls;
      std::vector<double> ms;
      // One thread: CPU time of the thread (robust on a busy machine).
      const bool cpu = at::get_num_threads() == 1;
      for (int r = 0; r < f->repeats; ++r) {
        ops::start_recording();
        const double c0 = ops::thread_cpu_ms();
        const double w = time_it(step, 0, 1).median_ms;
        ms.push_back(cpu ? ops::thread_cpu_ms() - c0 : w);
        calls.push_back(ops::stop_recording());
      }
      print_per_layer(
          labels[0] + ", " + what,
          rows,
          calls,
          ms,
          cpu ? ops::fma_peak_gflops(1, 0.2, true) : peak,
          cpu);
    };
    if (f->per_layer && !f->json)
      per_layer("inference", nets[0], infer[0]);
    std::vector<Timing> tt(2);
    if (f->train) {
      nets.clear(); // free the folded copies first
      std::vector<models::Model> tnets;
      std::vector<std::shared_ptr<torch::optim::SGD>> opts;
      for (const auto& v : variants) {
        tnets.push_back(models::build(v));
        tnets.back().module->train();
        opts.push_back(std::make_shared<torch::optim::SGD>(
            tnets.back().module->parameters(),
            torch::optim::SGDOptions(1e-3).momentum(0.9)));
      }
      const auto target =
          tnets[0].spec.video()
              ? torch::zeros({a->batch}, torch::kLong)
              : torch::zeros(
                    {a->batch, a->size, a->size, a->size}, torch::kLong);
      std::vector<std::function<void()>> steps;
      for (size_t i = 0; i < tnets.size(); ++i)
        steps.push_back([&, i] {
          opts[i]->zero_grad();
          auto loss = torch::cross_entropy_loss(tnets[i].forward(x), target);
          loss.backward();
          opts[i]->step();
        });
      tt = time_interleaved(steps, f->warmup, f->repeats);
      if (f->per_layer && !f->json)
        per_layer("training step", tnets[0], steps[0]);
    }
    nlohmann::ordered_json j;
    j["network"] = a->net.net;
    j["input"] = shape_str(in_sizes);
    j["threads"] = at::get_num_threads();
    j["bn_folded"] = !f->no_fold;
    j["peak_gflops"] = peak;
    if (!f->json)
      std::printf(
          "\ncakes bench model: %s, input %s, %d threads, BN %s, medians of "
          "%d after %d warm-up; fp32 FMA peak %.1f GFLOP/s\n\n%-26s %9s %10s "
          "%10s %9s %9s %6s%s\n",
          a->net.net.c_str(),
          j["input"].get<std::string>().c_str(),
          at::get_num_threads(),
          f->no_fold ? "separate" : "folded",
          f->repeats,
          f->warmup,
          peak,
          "operation",
          "GMACs",
          "MAC ratio",
          "infer ms",
          "ratio",
          "min ratio",
          "%peak",
          f->train ? "   train ms      ratio  %peak" : "");
    for (size_t i = 0; i < 2; ++i) {
      const double mr = double(macs[i]) / double(macs[1]);
      const double ir = ti[i].median_ms / ti[1].median_ms;
      // The fastest runs are the least disturbed by other processes on a
      // shared machine; their ratio is reported beside the medians'.
      const double imr = ti[i].min_ms / ti[1].min_ms;
      const double tr = f->train ? tt[i].median_ms / tt[1].median_ms : 0.0;
      nlohmann::ordered_json r;
      r["operation"] = labels[i];
      r["macs"] = macs[i];
      r["mac_ratio_vs_3d"] = mr;
      r["inference_ms"] = ti[i].median_ms;
      r["inference_ratio_vs_3d"] = ir;
      r["inference_min_ms"] = ti[i].min_ms;
      r["inference_min_ratio_vs_3d"] = imr;
      // Share of the peak over the whole network: forward MACs (x3 for a
      // training step: forward and both gradients) over wall time.
      const double ip = 100.0 * 2.0 * macs[i] / (ti[i].median_ms * 1e6) / peak;
      const double tp =
          f->train ? 100.0 * 6.0 * macs[i] / (tt[i].median_ms * 1e6) / peak
                   : 0.0;
      r["inference_percent_of_peak"] = ip;
      if (f->train) {
        r["train_percent_of_peak"] = tp;
        r["train_step_ms"] = tt[i].median_ms;
        r["train_ratio_vs_3d"] = tr;
      }
      j["results"].push_back(r);
      if (!f->json) {
        std::printf(
            "%-26s %9.2f %10.3f %10.1f %9.3f %9.3f %5.1f%%",
            labels[i].c_str(),
            macs[i] / 1e9,
            mr,
            ti[i].median_ms,
            ir,
            imr,
            ip);
        if (f->train)
          std::printf(" %10.1f %10.3f %5.1f%%", tt[i].median_ms, tr, tp);
        std::printf("\n");
      }
    }
    if (f->json)
      std::cout << j.dump(1) << "\n";
    else
      std::printf(
          "\nratio = median time / median time of the conv3d variant, both "
          "measured interleaved in this run; min ratio = the same with the "
          "fastest runs; MAC ratio = MACs / MACs of conv3d; %%peak = 2 x "
          "MACs (x3 for a training step) / time / the peak above\n");
  });
}

} // namespace cakes::cli
