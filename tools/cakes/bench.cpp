// cakes bench layer: the fused CAKES op against the paper's formulation
// (one convolution per group, then concatenation) and a full 3x3x3 convolution
// of the same width, timed in one run.
#include "commands.h"

#include "cakes/nn/config.h"
#include "cakes/ops/shrunk_conv3d.h"
#include "cakes/util/timing.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include <cstdio>
#include <iostream>

namespace cakes::cli {
namespace {

std::vector<at::Tensor> make_weights(const Config& cfg, int64_t c_in) {
  std::vector<at::Tensor> ws;
  for (const auto& g : cfg.groups())
    ws.push_back(
        at::randn({g.channels, c_in, g.kernel.d, g.kernel.h, g.kernel.w}) *
        0.05);
  return ws;
}

at::Tensor per_group_concat(
    const at::Tensor& x,
    const std::vector<at::Tensor>& ws,
    at::IntArrayRef stride) {
  std::vector<at::Tensor> outs;
  for (const auto& w : ws) {
    if (w.size(0) == 0)
      continue;
    outs.push_back(at::conv3d(
        x, w, {}, stride, {w.size(2) / 2, w.size(3) / 2, w.size(4) / 2}));
  }
  return at::cat(outs, 1);
}

} // namespace

void run_layer_bench(const LayerBenchArgs& a) {
  set_threads(a.threads);
  const Config cfg = Config::parse(a.split);
  if (cfg.out_channels() != a.out)
    throw std::invalid_argument(
        "split '" + a.split + "' has " + std::to_string(cfg.out_channels()) +
        " channels but --out is " + std::to_string(a.out));
  const auto dims = parse_dims(a.input, "--input");
  if (dims.size() != 4)
    throw std::invalid_argument(
        "bad --input '" + a.input + "': expected NxDxHxW, e.g. 1x8x56x56");
  const auto sv = parse_dims(a.stride, "--stride");
  if (sv.size() != 3)
    throw std::invalid_argument(
        "bad --stride '" + a.stride + "': expected DxHxW");
  const std::vector<int64_t> stride(sv.begin(), sv.end());

  at::manual_seed(0);
  const auto x = at::randn({dims[0], a.in, dims[1], dims[2], dims[3]});
  const auto ws = make_weights(cfg, a.in);
  const auto full = make_weights(Config::uniform({3, 3, 3}, a.out), a.in);
  const auto macs = ops::shrunk_conv3d_macs(x.sizes(), ws, stride);
  const auto full_macs = ops::shrunk_conv3d_macs(x.sizes(), full, stride);

  struct Candidate {
    std::string name;
    int64_t macs;
    std::function<at::Tensor(const at::Tensor&, const std::vector<at::Tensor>&)>
        fn;
    const std::vector<at::Tensor>* weights;
  };
  const std::vector<Candidate> cands = {
      {"cakes fused (" + cfg.str() + ")",
       macs,
       [&](const at::Tensor& in, const std::vector<at::Tensor>& w) {
         return ops::shrunk_conv3d(in, w, stride);
       },
       &ws},
      {"per-group conv3d + cat",
       macs,
       [&](const at::Tensor& in, const std::vector<at::Tensor>& w) {
         return per_group_concat(in, w, stride);
       },
       &ws},
      {"full 3x3x3 at::conv3d",
       full_macs,
       [&](const at::Tensor& in, const std::vector<at::Tensor>& w) {
         return at::conv3d(in, w[0], {}, stride, {1, 1, 1});
       },
       &full},
      {"full 3x3x3 cakes op",
       full_macs,
       [&](const at::Tensor& in, const std::vector<at::Tensor>& w) {
         return ops::shrunk_conv3d(in, w, stride);
       },
       &full},
  };

  std::vector<std::function<void()>> fwd, fwdbwd;
  std::vector<at::Tensor> xg;
  std::vector<std::vector<at::Tensor>> wg;
  for (const auto& c : cands) {
    fwd.push_back([&c, &x] {
      at::NoGradGuard ng;
      c.fn(x, *c.weights);
    });
    xg.push_back(x.clone().requires_grad_(true));
    std::vector<at::Tensor> w;
    for (const auto& t : *c.weights)
      w.push_back(t.clone().requires_grad_(true));
    wg.push_back(w);
  }
  const auto gy = at::randn_like(cands[0].fn(x, ws));
  for (size_t i = 0; i < cands.size(); ++i) {
    fwdbwd.push_back([&, i] {
      auto y = cands[i].fn(xg[i], wg[i]);
      y.backward(i < 2 ? gy : at::ones_like(y));
      xg[i].mutable_grad().reset();
      for (auto& w : wg[i])
        w.mutable_grad().reset();
    });
  }
  const auto tf = time_interleaved(fwd, a.warmup, a.repeats);
  std::vector<Timing> tb(cands.size());
  if (!a.no_backward)
    tb = time_interleaved(fwdbwd, a.warmup, a.repeats);

  const double base_f = tf[2].median_ms, base_b = tb[2].median_ms;
  nlohmann::ordered_json j;
  j["input"] = a.input;
  j["in"] = a.in;
  j["out"] = a.out;
  j["split"] = cfg.str();
  j["threads"] = at::get_num_threads();
  j["ideal_speedup"] = double(full_macs) / double(macs);
  if (!a.json) {
    std::printf(
        "cakes bench layer: C_in %lld -> C_out %lld, input %s, stride %s, %d "
        "threads\n"
        "split %s: %.3f GMACs vs %.3f for 3x3x3 (ideal speed-up %.2fx)\n\n",
        (long long)a.in,
        (long long)a.out,
        a.input.c_str(),
        a.stride.c_str(),
        at::get_num_threads(),
        cfg.str().c_str(),
        macs / 1e9,
        full_macs / 1e9,
        double(full_macs) / macs);
    std::printf(
        "%-44s %8s %9s %9s %7s %10s %7s\n",
        "variant",
        "GMACs",
        "fwd ms",
        "GFLOP/s",
        "vs 3D",
        "fwd+bwd ms",
        "vs 3D");
  }
  for (size_t i = 0; i < cands.size(); ++i) {
    const double gf = 2.0 * cands[i].macs / (tf[i].median_ms * 1e6);
    nlohmann::ordered_json r;
    r["variant"] = cands[i].name;
    r["macs"] = cands[i].macs;
    r["forward_ms"] = tf[i].median_ms;
    r["forward_gflops"] = gf;
    r["forward_speedup_vs_3x3x3"] = base_f / tf[i].median_ms;
    if (!a.no_backward) {
      r["forward_backward_ms"] = tb[i].median_ms;
      r["forward_backward_speedup_vs_3x3x3"] = base_b / tb[i].median_ms;
    }
    j["results"].push_back(r);
    if (!a.json)
      std::printf(
          "%-44s %8.3f %9.3f %9.1f %6.2fx %10.3f %6.2fx\n",
          cands[i].name.c_str(),
          cands[i].macs / 1e9,
          tf[i].median_ms,
          gf,
          base_f / tf[i].median_ms,
          tb[i].median_ms,
          a.no_backward ? 0.0 : base_b / tb[i].median_ms);
  }
  const double vs_pg_f = tf[1].median_ms / tf[0].median_ms;
  const double vs_pg_b = a.no_backward ? 0 : tb[1].median_ms / tb[0].median_ms;
  j["fused_vs_per_group_forward"] = vs_pg_f;
  j["fused_vs_per_group_forward_backward"] = vs_pg_b;
  if (a.json) {
    std::cout << j.dump(1) << "\n";
  } else {
    std::printf(
        "\nfused vs per-group+cat: %.2fx forward, %.2fx forward+backward\n"
        "(medians of %d runs after %d warm-up; 'vs 3D' = time of the full "
        "3x3x3 "
        "at::conv3d / time of the row)\n",
        vs_pg_f,
        vs_pg_b,
        a.repeats,
        a.warmup);
  }
}

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "speed measurements");
  bench->require_subcommand(1);
  auto args = std::make_shared<LayerBenchArgs>();
  auto* layer = bench->add_subcommand(
      "layer", "fused CAKES op vs per-group convs + concat vs full 3x3x3");
  layer->add_option("--in", args->in, "input channels")
      ->check(CLI::PositiveNumber);
  layer->add_option("--out", args->out, "output channels")
      ->check(CLI::PositiveNumber);
  layer->add_option("--input", args->input, "NxDxHxW of the input");
  layer->add_option(
      "--split", args->split, "configuration, e.g. 3x3x3:22,1x3x3:21,3x1x1:21");
  layer->add_option("--stride", args->stride, "stride DxHxW");
  layer->add_option("--threads", args->threads, "threads (0 = all cores)");
  layer->add_option("--warmup", args->warmup, "warm-up runs");
  layer->add_option("--repeats", args->repeats, "timed runs (median reported)")
      ->check(CLI::PositiveNumber);
  layer->add_flag("--json", args->json, "print JSON");
  layer->add_flag("--no-backward", args->no_backward, "forward only");
  layer->callback([args] { run_layer_bench(*args); });
}

} // namespace cakes::cli
