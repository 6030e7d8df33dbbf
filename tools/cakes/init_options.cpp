#include "init_options.h"
#include "commands.h"
#include "net_options.h"

#include "cakes/models/i3d_resnet.h"
#include "cakes/models/staged_copy.h"
#include "cakes/models/weights.h"
#include "cakes/search/derive.h"
#include "cakes/search/inherit.h"
#include "cakes/search/run.h"
#include "cakes/search/supernet.h"
#include "cakes/train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <stdexcept>

namespace cakes::cli {

size_t net_flags_given(const CLI::App* c) {
  size_t n = 0;
  for (const char* f : {"--net", "--op", "--config", "--preset", "--width"})
    n += c->count(f);
  return n;
}

void add_init_flags(CLI::App* c, InitOptions& o) {
  auto* init = c->add_option(
      "--init",
      o.file,
      "initial weights: a torchvision 2D ResNet state dict (inflated), a "
      "file of the paper's code, a cakes search or training checkpoint "
      "(docs/WEIGHTS.md)");
  c->add_option(
       "--init-check",
       o.check,
       "torch.save'd {\"x\": input, \"y\": logits}: the initial network must "
       "reproduce y within 1e-4 relative")
      ->needs(init);
}

double relative_difference(models::Model& model, const std::string& ref) {
  const auto io = models::read_pytorch_tensors(ref);
  if (!io.count("x") || !io.count("y"))
    throw std::invalid_argument(
        "'" + ref + "' must hold the tensors \"x\" (input) and \"y\" (logits)");
  const auto x = io.at("x").to(torch::kFloat);
  const auto y = io.at("y").to(torch::kDouble);
  torch::NoGradGuard no_grad;
  model.module->eval();
  const auto out = model.forward(x).to(torch::kDouble);
  if (out.sizes() != y.sizes())
    throw std::invalid_argument(
        "'" + ref + "': the network gives " + models::shape_str(out) +
        " for x, y is " + models::shape_str(y));
  const double scale = y.abs().max().item<double>();
  const double diff = (out - y).abs().max().item<double>();
  return scale > 0 ? diff / scale : diff;
}

void check_reference(models::Model& model, const std::string& ref) {
  const double d = relative_difference(model, ref);
  char line[160];
  std::snprintf(
      line,
      sizeof line,
      "max relative difference %.3g to %s (max |out - y| / max |y|)",
      d,
      ref.c_str());
  if (!(d <= 1e-4))
    throw std::runtime_error(std::string(line) + ": above 1e-4");
  std::printf("%s\n", line);
}

namespace {

models::I3DResNetImpl& i3d_of(models::Model& m, const std::string& file) {
  auto* net = dynamic_cast<models::I3DResNetImpl*>(m.module.get());
  if (!net)
    throw std::invalid_argument(
        "'" + file + "': needs an I3D ResNet, not " + m.spec.network);
  return *net;
}

bool is_classifier(const std::string& key) {
  return key.rfind("fc.", 0) == 0 || key.rfind("classifier_", 0) == 0;
}

// `from` as a network with `classes` classes: every tensor copied, the
// classifier re-initialised when the class count differs.
models::Model
with_classes(models::Model from, int64_t classes, const std::string& file) {
  if (classes <= 0 || from.spec.num_classes == classes)
    return from;
  auto spec = from.spec;
  spec.num_classes = classes;
  auto to = rebuilt(from, spec, {}, "'" + file + "'", true);
  std::printf(
      "%s: classifier re-initialised for %lld classes (the file has "
      "%lld)\n",
      file.c_str(),
      (long long)classes,
      (long long)from.spec.num_classes);
  return to;
}

bool is_cakes_checkpoint(const std::string& path, train::CheckpointMeta& meta) {
  try {
    meta = train::read_checkpoint_meta(path);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

} // namespace

models::Model rebuilt(
    const models::Model& from,
    const models::NetworkSpec& spec,
    const models::BuildOptions& options,
    const std::string& what,
    bool classifier_may_differ) {
  auto to = models::build(spec, options);
  std::map<std::string, at::Tensor> src;
  for (const auto& p : from.module->named_parameters())
    src[p.key()] = p.value();
  for (const auto& b : from.module->named_buffers())
    src[b.key()] = b.value();
  models::StagedCopy staged;
  auto stage = [&](const std::string& k, const at::Tensor& dst) {
    auto it = src.find(k);
    if (it == src.end())
      throw std::invalid_argument(
          what + ": no tensor '" + k + "' for the network");
    if (classifier_may_differ && is_classifier(k) &&
        it->second.sizes() != dst.sizes())
      return;
    staged.add(k, dst, k, it->second);
  };
  for (const auto& p : to.module->named_parameters())
    stage(p.key(), p.value());
  for (const auto& b : to.module->named_buffers())
    stage(b.key(), b.value());
  staged.commit();
  return to;
}

models::Model initial_model(
    const InitOptions& o, const models::NetworkSpec& wanted, bool net_given) {
  models::Model m;
  std::string what;
  train::CheckpointMeta meta;
  bool inflated = false;
  if (is_cakes_checkpoint(o.file, meta)) {
    if (meta.sections.count("search")) {
      auto net = search::load_search_checkpoint(o.file, nullptr);
      const auto d = search::derive_by_volume(net);
      m = search::inherit(net, d);
      what = "search checkpoint: the derived network, weights inherited";
    } else {
      m = train::load_model(o.file);
      what = "cakes checkpoint";
    }
  } else {
    const auto file = models::read_torch_file(o.file);
    bool paper = false, torchvision = false;
    for (const auto& kv : file.tensors) {
      paper = paper || kv.first.rfind("base_model.", 0) == 0;
      torchvision = torchvision || kv.first == "layer1.0.conv1.weight";
    }
    if (paper) {
      std::map<std::string, at::Tensor> sd(
          file.tensors.begin(), file.tensors.end());
      const auto spec = models::paper_network_spec(sd, o.file);
      if (spec.op.op == "super") {
        // The paper's search super-network: derived as ours would be (per
        // layer the channels of largest |gamma|), the kept ones inherited.
        auto net = search::build_supernet(spec, spec.op.candidates);
        models::import_paper_state_dict(i3d_of(net.model, o.file), sd, o.file);
        m = search::inherit(net, search::derive_by_volume(net));
        what = "the paper's search super-network, " + file.form +
               ": the derived network, weights inherited";
      } else {
        m = models::import_paper_model(file, o.file);
        what = "the paper's layout, " + file.form;
      }
    } else if (torchvision) {
      auto spec = wanted;
      if (spec.num_classes <= 0) { // import without --classes: the file's
        spec.num_classes = 1000;
        for (const auto& kv : file.tensors)
          if (kv.first == "fc.weight" && kv.second.dim() == 2)
            spec.num_classes = kv.second.size(0);
      }
      m = models::build(spec);
      models::inflate_2d_resnet(i3d_of(m, o.file), o.file);
      what = "torchvision 2D ResNet, inflated";
      inflated = true;
    } else {
      throw std::invalid_argument(
          "'" + o.file +
          "' is neither a cakes checkpoint, a file of the paper's code "
          "(base_model.*) nor a torchvision ResNet state dict (keys start '" +
          (file.tensors.empty() ? std::string()
                                : file.tensors.front().first.substr(0, 60)) +
          "')");
    }
  }
  if (!inflated && net_given) {
    auto same_classes = wanted;
    same_classes.num_classes = m.spec.num_classes;
    const auto diff = models::difference(m.spec, same_classes);
    if (!diff.empty())
      throw std::invalid_argument(
          "'" + o.file + "' holds another network than the flags ask for (" +
          diff + "): leave out --net/--op/--config/--preset/--width");
  }
  if (!inflated &&
      m.spec.canonical().in_channels != wanted.canonical().in_channels &&
      wanted.in_channels > 0 && m.spec.in_channels > 0)
    throw std::invalid_argument(
        "'" + o.file + "' takes " + std::to_string(m.spec.in_channels) +
        " input channels, the data have " + std::to_string(wanted.in_channels));
  std::printf(
      "%s (%s): %s\n", o.file.c_str(), what.c_str(), m.spec.describe().c_str());
  if (!o.check.empty())
    check_reference(m, o.check);
  return with_classes(std::move(m), wanted.num_classes, o.file);
}

void init_supernet(const InitOptions& o, models::Model& supernet) {
  if (o.file.empty())
    return;
  if (!o.check.empty())
    throw std::invalid_argument(
        "--init-check compares a trained network's logits; a super-network "
        "has none to compare (use it with cakes train or cakes import)");
  models::inflate_2d_resnet(i3d_of(supernet, o.file), o.file);
  std::printf(
      "%s: torchvision 2D ResNet inflated into the super-network\n",
      o.file.c_str());
}

namespace {

struct ImportArgs {
  std::string file, out, check;
  NetOptions net;
  int64_t classes = 0;
  bool force = false;
  int threads = 0;
};

void run_import(const ImportArgs& a, bool op_given, bool net_given) {
  set_threads(a.threads);
  refuse_overwrite(a.out, a.force);
  refuse_input_as_output(a.out, {a.file, a.check});
  auto wanted = resolve_network(a.net, op_given, a.classes, 0);
  InitOptions init;
  init.file = a.file;
  init.check = a.check;
  auto model = initial_model(init, wanted, net_given);
  train::CheckpointMeta meta;
  meta.network = model.spec;
  meta.sections["import"] = nlohmann::json{{"source", a.file}}.dump();
  train::write_checkpoint(a.out, *model.module, meta);
  std::printf("checkpoint %s\n", a.out.c_str());
}

} // namespace

void add_import(CLI::App& app) {
  auto a = std::make_shared<ImportArgs>();
  auto* c = app.add_subcommand(
      "import",
      "a file written by the paper's code (any torch.save form) to a cakes "
      "checkpoint");
  c->add_option(
       "file",
       a->file,
       "a file of the paper's code, a torchvision 2D ResNet state dict (give "
       "--net/--op/...), a cakes search or training checkpoint")
      ->required();
  add_net_options(c, a->net);
  c->add_option(
       "--classes",
       a->classes,
       "classes (default: the file's); another count re-initialises the "
       "classifier")
      ->check(CLI::PositiveNumber);
  c->add_option("--out", a->out, "cakes checkpoint to write")->required();
  c->add_option(
      "--check",
      a->check,
      "torch.save'd {\"x\": input, \"y\": logits} the imported network must "
      "reproduce (1e-4 relative)");
  c->add_flag("--force", a->force, "overwrite --out");
  c->add_option("--threads", a->threads, "threads (0 = all cores)");
  c->callback(
      [a, c] { run_import(*a, c->count("--op") > 0, net_flags_given(c)); });
}

} // namespace cakes::cli
