// cakes bench layer: the fused CAKES op against the paper's formulation
// (one convolution per group, then concatenation) and a full 3x3x3 convolution
// of the same width, timed in one run; also bench peak, kernels and the
// per-layer report of bench model. Over 500 lines because every benchmark
// shares the peak measurement and the interleaved timing.
#include "commands.h"

#include "cakes/nn/config.h"
#include "cakes/ops/profile.h"
#include "cakes/ops/shrunk_conv3d.h"
#include "cakes/util/timing.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <torch/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>

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

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string mix_str(const ops::ConvCall& c) {
  std::string s;
  for (const auto& g : c.groups)
    s += (s.empty() ? "" : ",") + std::to_string(g[1]) + "x" +
         std::to_string(g[2]) + "x" + std::to_string(g[3]) + ":" +
         std::to_string(g[0]);
  return s;
}

std::string dims_str(const int64_t* v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

// Same convolution: backward calls are matched to the forward call they
// differentiate by this.
bool same_conv(const ops::ConvCall& a, const ops::ConvCall& b) {
  return a.input == b.input && a.stride == b.stride && a.groups == b.groups;
}

// The layer a bench command times, from its --split, --out, --input and
// --stride: the configuration, the input's N, D, H, W and the stride.
struct Layer {
  Config cfg;
  std::vector<int64_t> dims, stride;
};
Layer parse_layer(
    const std::string& split,
    int64_t out,
    const std::string& input,
    const std::string& stride) {
  Config cfg = Config::parse(split);
  if (cfg.out_channels() != out)
    throw std::invalid_argument(
        "split '" + split + "' has " + std::to_string(cfg.out_channels()) +
        " channels but --out is " + std::to_string(out));
  const auto dims = parse_dims(input, "--input");
  if (dims.size() != 4)
    throw std::invalid_argument(
        "bad --input '" + input + "': expected NxDxHxW, e.g. 1x8x56x56");
  const auto sv = parse_dims(stride, "--stride");
  if (sv.size() != 3)
    throw std::invalid_argument(
        "bad --stride '" + stride + "': expected DxHxW");
  return {
      std::move(cfg),
      std::vector<int64_t>(dims.begin(), dims.end()),
      std::vector<int64_t>(sv.begin(), sv.end())};
}

} // namespace

void print_per_layer(
    const std::string& title,
    const std::vector<LayerRow>& layers,
    const std::vector<std::vector<ops::ConvCall>>& steps,
    const std::vector<double>& step_ms,
    double peak,
    bool cpu_time) {
  if (steps.empty())
    return;
  auto ms_of = [cpu_time](const ops::ConvCall& c) {
    return cpu_time ? c.cpu_ms : c.ms;
  };
  // Layers are matched to the forward calls of a step in order, by their
  // multiply-adds (a layer may make several calls, e.g. P3D's two stages;
  // layers without a call, such as the classifier, get none).
  struct Row {
    std::string name, operation, shape, mix, engine;
    int64_t macs = 0, bwd_macs = 0;
    std::vector<double> fwd, bwd;
  };
  std::vector<Row> rows;
  std::vector<int> layer_of; // forward call index of step 0 -> row
  {
    const auto& calls = steps[0];
    const size_t nl = layers.size();
    size_t li = 0;
    int64_t left = nl ? layers[0].macs : 0;
    bool started = false;
    auto next_layer = [&] {
      if (++li < nl)
        left = layers[li].macs;
      started = false;
    };
    for (size_t k = 0; k < calls.size(); ++k) {
      if (calls[k].backward)
        continue;
      const int64_t m = calls[k].macs;
      while (li < nl && !(m <= left && (left > 0 || m == 0)))
        next_layer();
      if (li >= nl) {
        rows.emplace_back();
        rows.back().name = "conv #" + std::to_string(rows.size() - 1);
      } else if (!started) {
        rows.emplace_back();
        rows.back().name = layers[li].name;
        rows.back().operation = layers[li].operation;
        started = true;
      }
      Row& r = rows.back();
      const auto& c = calls[k];
      if (r.shape.empty()) {
        r.shape = dims_str(c.input.data(), 5);
        if (c.stride != std::array<int64_t, 3>{1, 1, 1})
          r.shape += " /" + dims_str(c.stride.data(), 3);
      }
      r.mix += (r.mix.empty() ? "" : " > ") + mix_str(c);
      if (r.engine.find(c.engine) == std::string::npos)
        r.engine += (r.engine.empty() ? "" : "+") + c.engine;
      r.macs += c.macs;
      layer_of.push_back(static_cast<int>(rows.size() - 1));
      if (li < nl) {
        left -= m;
        if (left == 0 && m > 0)
          next_layer();
      }
    }
  }
  const size_t nfwd = layer_of.size();
  for (auto& r : rows) {
    r.fwd.assign(steps.size(), 0.0);
    r.bwd.assign(steps.size(), 0.0);
  }
  bool any_bwd = false;
  for (size_t s = 0; s < steps.size(); ++s) {
    std::vector<const ops::ConvCall*> fwd;
    std::vector<char> taken;
    for (const auto& c : steps[s])
      if (!c.backward)
        fwd.push_back(&c);
    if (fwd.size() != nfwd)
      throw std::runtime_error(
          "per-layer: steps made different numbers of convolution calls");
    taken.assign(nfwd, 0);
    for (size_t k = 0; k < nfwd; ++k)
      rows[layer_of[k]].fwd[s] += ms_of(*fwd[k]);
    for (const auto& c : steps[s]) {
      if (!c.backward)
        continue;
      any_bwd = true;
      // The latest forward call of the same convolution not yet matched:
      // autograd runs the backward in reverse order.
      for (size_t k = nfwd; k-- > 0;)
        if (!taken[k] && same_conv(*fwd[k], c)) {
          taken[k] = 1;
          Row& r = rows[layer_of[k]];
          r.bwd[s] += ms_of(c);
          if (s == 0)
            r.bwd_macs +=
                c.macs * ((c.grad_input ? 1 : 0) + (c.grad_weight ? 1 : 0));
          if (r.engine.find(c.engine) == std::string::npos)
            r.engine += "+" + c.engine;
          break;
        }
    }
  }
  auto pct = [&](int64_t macs, double ms) {
    return ms > 0 ? 100.0 * 2.0 * macs / (ms * 1e6) / peak : 0.0;
  };
  auto gfl = [&](int64_t macs, double ms) {
    return ms > 0 ? 2.0 * macs / (ms * 1e6) : 0.0;
  };
  std::printf(
      "\nper layer: %s (medians over %zu steps, %s; %%peak of %.1f "
      "GFLOP/s)\n"
      "%-20s %-22s %-34s %-7s %8s %7s %6s",
      title.c_str(),
      steps.size(),
      cpu_time ? "CPU time of the one thread" : "wall time",
      peak,
      "layer",
      "input (/stride)",
      "sub-kernels",
      "engine",
      "fwd ms",
      "GFLOP/s",
      "%peak");
  if (any_bwd)
    std::printf(" %8s %7s %6s", "bwd ms", "GFLOP/s", "%peak");
  std::printf("\n");
  double sum_f = 0, sum_b = 0;
  int64_t macs_f = 0, macs_b = 0;
  struct Kind {
    double fwd = 0, bwd = 0;
    int64_t macs = 0, bwd_macs = 0;
    int layers = 0;
  };
  std::map<std::string, Kind> kinds;
  for (const auto& r : rows) {
    const double f = median(r.fwd), b = median(r.bwd);
    sum_f += f;
    sum_b += b;
    macs_f += r.macs;
    macs_b += r.bwd_macs;
    auto& k = kinds[r.mix];
    k.fwd += f;
    k.bwd += b;
    k.macs += r.macs;
    k.bwd_macs += r.bwd_macs;
    ++k.layers;
    std::printf(
        "%-20s %-22s %-34s %-7s %8.2f %7.1f %5.1f%%",
        r.name.c_str(),
        r.shape.c_str(),
        r.mix.substr(0, 34).c_str(),
        r.engine.c_str(),
        f,
        gfl(r.macs, f),
        pct(r.macs, f));
    if (any_bwd)
      std::printf(
          " %8.2f %7.1f %5.1f%%", b, gfl(r.bwd_macs, b), pct(r.bwd_macs, b));
    std::printf("\n");
  }
  std::printf("\nby sub-kernel mix:\n");
  for (const auto& [mix, k] : kinds) {
    std::printf(
        "  %-40s %3d layers %8.2f ms fwd %5.1f%%",
        mix.substr(0, 40).c_str(),
        k.layers,
        k.fwd,
        pct(k.macs, k.fwd));
    if (any_bwd)
      std::printf(" %8.2f ms bwd %5.1f%%", k.bwd, pct(k.bwd_macs, k.bwd));
    std::printf("\n");
  }
  const double step = median(step_ms);
  std::printf(
      "\nstep %.1f ms (median): convolutions forward %.1f ms (%.1f%% of "
      "peak)",
      step,
      sum_f,
      pct(macs_f, sum_f));
  if (any_bwd)
    std::printf(", backward %.1f ms (%.1f%%)", sum_b, pct(macs_b, sum_b));
  std::printf(
      "; outside convolutions %.1f ms (%.1f%% of the step)\n",
      step - sum_f - sum_b,
      step > 0 ? 100.0 * (step - sum_f - sum_b) / step : 0.0);
}

void add_engine_option(CLI::App* command, std::string& engine) {
  command
      ->add_option(
          "--engine",
          engine,
          "CPU implementation of the op: auto (chosen per shape), direct, "
          "panel, gemm")
      ->check(CLI::IsMember({"auto", "direct", "panel", "gemm"}));
}

void apply_engine(const std::string& engine) {
  using ops::Engine;
  ops::set_engine(
      engine == "direct"  ? Engine::Direct
      : engine == "panel" ? Engine::Panel
      : engine == "gemm"  ? Engine::Gemm
                          : Engine::Auto);
}

void run_layer_bench(const LayerBenchArgs& a) {
  set_threads(a.threads);
  apply_engine(a.engine);
  const Layer layer = parse_layer(a.split, a.out, a.input, a.stride);
  const Config& cfg = layer.cfg;
  const auto& dims = layer.dims;
  const auto& stride = layer.stride;

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
  const double peak = ops::fma_peak_gflops();
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
  j["peak_gflops"] = peak;
  if (!a.json) {
    std::printf(
        "cakes bench layer: C_in %lld -> C_out %lld, input %s, stride %s, %d "
        "threads\n"
        "split %s: %.3f GMACs vs %.3f for 3x3x3 (ideal speed-up %.2fx)\n"
        "fp32 FMA peak of this machine, %d threads: %.1f GFLOP/s\n\n",
        (long long)a.in,
        (long long)a.out,
        a.input.c_str(),
        a.stride.c_str(),
        at::get_num_threads(),
        cfg.str().c_str(),
        macs / 1e9,
        full_macs / 1e9,
        double(full_macs) / macs,
        at::get_num_threads(),
        peak);
    std::printf(
        "%-44s %8s %9s %9s %6s %7s %10s %6s %7s\n",
        "variant",
        "GMACs",
        "fwd ms",
        "GFLOP/s",
        "%peak",
        "vs 3D",
        "fwd+bwd ms",
        "%peak",
        "vs 3D");
  }
  for (size_t i = 0; i < cands.size(); ++i) {
    const double gf = 2.0 * cands[i].macs / (tf[i].median_ms * 1e6);
    // Forward plus both gradients: three times the forward's MACs.
    const double gb =
        a.no_backward ? 0.0 : 6.0 * cands[i].macs / (tb[i].median_ms * 1e6);
    nlohmann::ordered_json r;
    r["variant"] = cands[i].name;
    r["macs"] = cands[i].macs;
    r["forward_ms"] = tf[i].median_ms;
    r["forward_gflops"] = gf;
    r["forward_percent_of_peak"] = 100 * gf / peak;
    r["forward_speedup_vs_3x3x3"] = base_f / tf[i].median_ms;
    if (!a.no_backward) {
      r["forward_backward_ms"] = tb[i].median_ms;
      r["forward_backward_percent_of_peak"] = 100 * gb / peak;
      r["forward_backward_speedup_vs_3x3x3"] = base_b / tb[i].median_ms;
    }
    j["results"].push_back(r);
    if (!a.json)
      std::printf(
          "%-44s %8.3f %9.3f %9.1f %5.1f%% %6.2fx %10.3f %5.1f%% %6.2fx\n",
          cands[i].name.c_str(),
          cands[i].macs / 1e9,
          tf[i].median_ms,
          gf,
          100 * gf / peak,
          base_f / tf[i].median_ms,
          tb[i].median_ms,
          100 * gb / peak,
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
        "3x3x3 at::conv3d / time of the row; %%peak = GFLOP/s of the row "
        "(forward+backward counted as 3x the forward's MACs) / the peak "
        "above)\n",
        vs_pg_f,
        vs_pg_b,
        a.repeats,
        a.warmup);
  }
}

namespace {

// `cakes bench kernels`: each pass of the op (forward, input gradient, weight
// gradient) through each engine, interleaved. With one thread the time is
// the calling thread's CPU time (LibTorch runs one thread inline), which a
// loaded machine disturbs far less than wall time: the A/B measurement used
// to develop the kernels (docs/DESIGN.md).
struct KernelBenchArgs {
  int64_t in = 64, out = 64;
  std::string input = "1x8x56x56", split = "3x3x3:22,1x3x3:21,3x1x1:21";
  std::string stride = "1x1x1", engines = "direct,panel";
  std::string passes = "forward,input,weight";
  int threads = 1, repeats = 15;
};

double wall_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void run_kernel_bench(const KernelBenchArgs& a) {
  set_threads(a.threads);
  const Layer layer = parse_layer(a.split, a.out, a.input, a.stride);
  const Config& cfg = layer.cfg;
  const auto& dims = layer.dims;
  const auto& stride = layer.stride;
  std::vector<std::string> engines;
  for (size_t b = 0; b <= a.engines.size();) {
    const size_t e = std::min(a.engines.find(',', b), a.engines.size());
    engines.push_back(a.engines.substr(b, e - b));
    if (engines.back() != "direct" && engines.back() != "panel" &&
        engines.back() != "gemm" && engines.back() != "auto")
      throw std::invalid_argument(
          "bad --engines '" + a.engines +
          "': expected a list of auto, direct, panel, gemm");
    b = e + 1;
  }
  at::manual_seed(0);
  const auto x = at::randn({dims[0], a.in, dims[1], dims[2], dims[3]});
  const auto ws = make_weights(cfg, a.in);
  const auto macs = ops::shrunk_conv3d_macs(x.sizes(), ws, stride);
  const auto gy = at::randn_like(ops::shrunk_conv3d(x, ws, stride));
  const bool cpu_time = at::get_num_threads() == 1;
  const double peak = ops::fma_peak_gflops(0, 0.2, cpu_time);
  at::NoGradGuard ng;
  const char* passes[] = {"forward", "input grad", "weight grad"};
  // samples[engine][pass]
  std::vector<std::array<std::vector<double>, 3>> samples(engines.size());
  bool run_pass[3] = {
      a.passes.find("forward") != std::string::npos,
      a.passes.find("input") != std::string::npos,
      a.passes.find("weight") != std::string::npos};
  for (int r = -2; r < a.repeats; ++r)
    for (size_t e = 0; e < engines.size(); ++e) {
      apply_engine(engines[e]);
      for (int p = 0; p < 3; ++p) {
        if (!run_pass[p])
          continue;
        const double t0 = cpu_time ? ops::thread_cpu_ms() : wall_ms();
        if (p == 0)
          ops::shrunk_conv3d(x, ws, stride);
        else
          ops::shrunk_conv3d_backward(
              gy, x, ws, stride, {1, 1, 1}, {p == 1, p == 2});
        const double t = (cpu_time ? ops::thread_cpu_ms() : wall_ms()) - t0;
        if (r >= 0)
          samples[e][p].push_back(t);
      }
    }
  apply_engine("auto");
  std::printf(
      "cakes bench kernels: C_in %lld -> %s, input %s, stride %s, %d "
      "thread%s, %s of %d runs; %.3f GMACs per pass; peak %.1f GFLOP/s\n\n"
      "%-8s %-12s %9s %9s %7s\n",
      (long long)a.in,
      cfg.str().c_str(),
      a.input.c_str(),
      a.stride.c_str(),
      at::get_num_threads(),
      at::get_num_threads() == 1 ? " (CPU time)" : "s (wall time)",
      cpu_time ? "minimum" : "median",
      a.repeats,
      macs / 1e9,
      peak,
      "engine",
      "pass",
      "ms",
      "GFLOP/s",
      "%peak");
  for (size_t e = 0; e < engines.size(); ++e)
    for (int p = 0; p < 3; ++p) {
      if (!run_pass[p])
        continue;
      auto v = samples[e][p];
      const double ms =
          cpu_time ? *std::min_element(v.begin(), v.end()) : median(v);
      const double gf = 2.0 * macs / (ms * 1e6);
      std::printf(
          "%-8s %-12s %9.3f %9.1f %6.1f%%\n",
          engines[e].c_str(),
          passes[p],
          ms,
          gf,
          100 * gf / peak);
    }
}

} // namespace

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
  add_engine_option(layer, args->engine);
  layer->callback([args] { run_layer_bench(*args); });

  auto ka = std::make_shared<KernelBenchArgs>();
  auto* kern = bench->add_subcommand(
      "kernels",
      "each pass of the op (forward, input and weight gradients) through "
      "each engine; with --threads 1, CPU time (kernel A/B on a busy machine)");
  kern->add_option("--in", ka->in, "input channels")
      ->check(CLI::PositiveNumber);
  kern->add_option("--out", ka->out, "output channels")
      ->check(CLI::PositiveNumber);
  kern->add_option("--input", ka->input, "NxDxHxW of the input");
  kern->add_option("--split", ka->split, "configuration, e.g. 3x3x3:64");
  kern->add_option("--stride", ka->stride, "stride DxHxW");
  kern->add_option(
      "--engines", ka->engines, "comma-separated: auto, direct, panel, gemm");
  kern->add_option(
      "--passes", ka->passes, "any of forward, input, weight (default all)");
  kern->add_option("--threads", ka->threads, "threads (1: CPU time)")
      ->check(CLI::PositiveNumber);
  kern->add_option("--repeats", ka->repeats, "timed runs")
      ->check(CLI::PositiveNumber);
  kern->callback([ka] { run_kernel_bench(*ka); });

  auto peak_threads = std::make_shared<int>(0);
  auto* peak = bench->add_subcommand(
      "peak",
      "this machine's fp32 FMA peak (a loop of independent vector FMAs)");
  peak->add_option("--threads", *peak_threads, "threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber);
  peak->callback([peak_threads] {
    set_threads(*peak_threads);
    const int t = at::get_num_threads();
    std::printf(
        "fp32 FMA peak, %d thread%s: %.1f GFLOP/s (%.1f per thread)\n",
        t,
        t == 1 ? "" : "s",
        ops::fma_peak_gflops(t),
        ops::fma_peak_gflops(1));
  });
}

} // namespace cakes::cli
