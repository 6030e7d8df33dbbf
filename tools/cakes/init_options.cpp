#include "init_options.h"
#include "commands.h"
#include "net_options.h"

#include "cakes/models/i3d_resnet.h"
#include "cakes/models/staged_copy.h"
#include "cakes/models/weights.h"
#include "cakes/models/zoo.h"
#include "cakes/search/derive.h"
#include "cakes/search/importance.h"
#include "cakes/search/inherit.h"
#include "cakes/search/run.h"
#include "cakes/search/supernet.h"
#include "cakes/train/checkpoint.h"
#include "cakes/util/check.h"
#include "cakes/util/messages.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <set>
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

void print_reinitialised(
    const std::string& file, int64_t classes, int64_t file_classes) {
  std::printf(
      "%s: classifier re-initialised for %lld classes (the file has "
      "%lld)\n",
      file.c_str(),
      (long long)classes,
      (long long)file_classes);
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
  print_reinitialised(file, classes, from.spec.num_classes);
  return to;
}

// "the paper's cost-priority search super-network" (or performance-).
std::string paper_supernet_what(const std::map<std::string, at::Tensor>& sd) {
  return std::string("the paper's ") +
         (models::paper_supernet_reads_kept(sd) ? "performance" : "cost") +
         "-priority search super-network";
}

bool is_cakes_checkpoint(const std::string& path, train::CheckpointMeta& meta) {
  try {
    meta = train::read_checkpoint_meta(path);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// What a PyTorch file holds, from its keys: the paper's layout (base_model.*)
// or a torchvision ResNet (layer1.0.conv1.weight); otherwise the one-line
// error, naming what `accepted` lists.
enum class TorchFileKind { paper, torchvision };
TorchFileKind torch_file_kind(
    const models::TorchFile& file,
    const std::string& path,
    const std::string& accepted) {
  for (const auto& kv : file.tensors)
    if (kv.first.rfind("base_model.", 0) == 0)
      return TorchFileKind::paper;
  for (const auto& kv : file.tensors)
    if (kv.first == "layer1.0.conv1.weight")
      return TorchFileKind::torchvision;
  throw std::invalid_argument(
      "'" + path + "' is " + accepted + " (its keys start '" +
      (file.tensors.empty() ? std::string()
                            : util::one_line(file.tensors.front().first, 60)) +
      "')");
}

} // namespace

namespace {

// Every parameter and buffer of `to` from `from`'s of the same name, staged
// (nothing copied unless all fit); with `classifier_may_differ` a classifier
// of another shape keeps `to`'s.
void copy_tensors(
    const models::Model& from,
    models::Model& to,
    const std::string& what,
    bool classifier_may_differ) {
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
}

// The paper's search super-network `sd` (paper_network_spec gives op
// "super") into our super-network of the same network and candidates.
// A cost-priority file has our structure and is loaded as it is. A
// performance-priority file's conv3 reads C_out channels, whichever are kept,
// by position, where our reader has a column per channel: its conv3 is
// repeated per candidate (channel n * C_out + j takes column j), as
// docs/CAKES.md §5 repeats a reader's 2D input weights.
void load_paper_supernet(
    models::Model& supernet,
    std::map<std::string, at::Tensor> sd,
    const std::string& what) {
  if (models::paper_supernet_reads_kept(sd)) {
    const auto n = int64_t(supernet.spec.op.candidates.size());
    for (const auto& p : models::network_positions(supernet.spec))
      if (!p.reader.empty()) {
        auto it = sd.find("base_model." + p.reader + ".weight");
        if (it != sd.end() && it->second.dim() == 5)
          it->second = it->second.repeat({1, n, 1, 1, 1});
      }
  }
  models::import_paper_state_dict(i3d_of(supernet, what), sd, what);
}

// The derived network of the paper's search super-network `sd`, derived as
// `cakes search` derives ours (search::derive_by_volume: per layer the C_out
// channels of largest |gamma|), the kept channels inherited. A
// performance-priority file's sub-network reads its kept channels, in
// ascending order, with conv3 as it is: conv3 becomes the kept channels'
// reader columns (the others, never read by the derived network, are zeroed,
// so that the whole super-network computes the derived network).
models::Model derived_from_paper_supernet(
    const models::NetworkSpec& spec,
    const std::map<std::string, at::Tensor>& sd,
    const std::string& what) {
  auto net = search::build_supernet(spec, spec.op.candidates);
  load_paper_supernet(net.model, sd, what);
  const auto d = search::derive_by_volume(net);
  if (models::paper_supernet_reads_kept(sd)) {
    torch::NoGradGuard no_grad;
    for (size_t l = 0; l < net.layers.size(); ++l) {
      const auto& reader = net.layers[l].reader;
      CAKES_CHECK(reader, "a bottleneck's position has a reader");
      auto w = reader->stages()[0][0];
      w.zero_();
      w.index_copy_(
          1,
          torch::tensor(d.kept[l], torch::kLong),
          sd.at(
              "base_model." + net.positions[net.layers[l].position].reader +
              ".weight"));
    }
  }
  return search::inherit(net, d);
}

// A (c, C_in, kd, kh, kw) kernel carried onto sub-kernel `k`: summed over
// every axis where k has extent 1, centre-cropped where its extent is
// between 1 and the kernel's. The inverse of docs/CAKES.md §5's inflation,
// as cakes.convert's shrink_kernel in Python.
at::Tensor shrink_kernel(const at::Tensor& w, const SubKernel& k) {
  const int64_t extents[3] = {k.d, k.h, k.w};
  at::Tensor out = w;
  for (int64_t a = 0; a < 3; ++a) {
    const int64_t full = out.size(2 + a), e = extents[a];
    if (e > full)
      throw std::invalid_argument(
          "sub-kernel " + k.str() + " does not fit in a kernel of extent " +
          std::to_string(full));
    if (e == 1)
      out = out.sum(2 + a, /*keepdim=*/true);
    else if (e < full)
      out = out.narrow(2 + a, (full - e) / 2, e);
  }
  return out.contiguous();
}

// A trained network of op conv3d into the super-network of the same network,
// as cakes.convert(model, candidates, "super") does in Python: at each
// position every candidate takes the position's kernel shrunk onto it and
// the norm is repeated per candidate; a reader's input weights are repeated
// per candidate; every other tensor is copied. A classifier of another
// shape keeps its initialisation.
void load_conv3d_into_supernet(
    const models::Model& from,
    models::Model& supernet,
    const std::string& what) {
  std::map<std::string, at::Tensor> src;
  for (const auto& p : from.module->named_parameters())
    src[p.key()] = p.value();
  for (const auto& b : from.module->named_buffers())
    src[b.key()] = b.value();
  const auto n = int64_t(supernet.spec.op.candidates.size());
  std::set<std::string> searched, readers;
  for (const auto& p : models::network_positions(supernet.spec)) {
    searched.insert(p.name);
    if (!p.reader.empty())
      readers.insert(p.reader);
  }
  models::StagedCopy staged;
  auto stage = [&](const std::string& key, const at::Tensor& dst) {
    // "layer1.0.conv2.weight_1x3x3", "layer1.0.conv2.bn.running_mean".
    const auto dot = key.rfind('.');
    const std::string layer = key.substr(0, dot), leaf = key.substr(dot + 1);
    const bool bn = layer.size() > 3 && layer.substr(layer.size() - 3) == ".bn";
    const bool weight = !bn && leaf.rfind("weight_", 0) == 0;
    const std::string owner = bn ? layer.substr(0, layer.size() - 3) : layer;
    const std::string from_key =
        weight && searched.count(owner) ? owner + ".weight_3x3x3" : key;
    const auto it = src.find(from_key);
    if (it == src.end())
      throw std::invalid_argument(
          what + ": no tensor '" + from_key + "' for the super-network's '" +
          key + "'");
    at::Tensor v = it->second;
    if (weight && searched.count(owner))
      v = shrink_kernel(v, SubKernel::parse(leaf.substr(7)));
    if (bn && searched.count(owner) && v.dim() == 1)
      v = v.repeat({n});
    if (weight && readers.count(owner) && v.dim() == 5)
      v = v.repeat({1, n, 1, 1, 1});
    if (is_classifier(key) && v.sizes() != dst.sizes())
      return;
    staged.add(key, dst, from_key, v);
  };
  for (const auto& p : supernet.module->named_parameters())
    stage(p.key(), p.value());
  for (const auto& b : supernet.module->named_buffers())
    stage(b.key(), b.value());
  staged.commit();
}

// The derivation of a search checkpoint's super-network whose configuration
// is `configs` (one per position, every candidate listed in order, as cakes
// derive writes them): per layer and candidate the channels of largest
// |gamma| that the configuration counts (ties to the lower index), and for
// a summed layer the channels its output_index names. For a configuration
// cakes derive wrote, under a budget too, that is the derivation it made.
search::Derivation derivation_of(
    const search::SuperNet& net,
    const std::vector<Config>& configs,
    const std::string& what) {
  if (configs.size() != net.positions.size())
    throw std::invalid_argument(
        "the configuration has " + std::to_string(configs.size()) +
        " positions, " + what + "'s network " +
        std::to_string(net.positions.size()));
  const auto imp = search::importance(net);
  const auto n = net.candidates.size();
  search::Derivation d;
  d.configs = configs;
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const auto& L = net.layers[l];
    const auto& cfg = configs[L.position];
    const auto& groups = cfg.groups();
    bool over_candidates = groups.size() == n;
    for (size_t g = 0; over_candidates && g < n; ++g)
      over_candidates = groups[g].kernel == net.candidates[g];
    if (!over_candidates || cfg.out_channels() != L.width ||
        cfg.conv_channels() != L.width)
      throw std::invalid_argument(
          "configuration of " + L.name + " (" + cfg.str() +
          ") is not a derivation of " + what + " (its " +
          std::to_string(L.width) + " channels over the candidates " +
          kernels_str(net.candidates) + ", in that order)");
    std::vector<int64_t> kept, counts;
    int64_t off = 0;
    for (size_t g = 0; g < n; ++g) {
      const int64_t c = groups[g].channels, base = int64_t(g) * L.width;
      counts.push_back(c);
      if (L.summed) {
        for (int64_t i = 0; i < c; ++i)
          kept.push_back(
              base + (cfg.output_index().empty()
                          ? off + i
                          : cfg.output_index()[off + i]));
      } else {
        std::vector<int64_t> order(size_t(L.width));
        std::iota(order.begin(), order.end(), base);
        std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
          return imp[l][size_t(a)] > imp[l][size_t(b)];
        });
        kept.insert(kept.end(), order.begin(), order.begin() + c);
      }
      off += c;
    }
    std::sort(kept.begin(), kept.end());
    d.kept.push_back(std::move(kept));
    d.counts.push_back(std::move(counts));
  }
  return d;
}

} // namespace

models::Model rebuilt(
    const models::Model& from,
    const models::NetworkSpec& spec,
    const models::BuildOptions& options,
    const std::string& what,
    bool classifier_may_differ) {
  auto to = models::build(spec, options);
  copy_tensors(from, to, what, classifier_may_differ);
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
      // The derivation cakes search wrote, or the one of --config (e.g. a
      // cakes derive under a budget).
      auto net = search::load_search_checkpoint(o.file, nullptr);
      const bool configured =
          net_given && wanted.op.op == "cakes" && !wanted.op.configs.empty();
      const auto d =
          configured ? derivation_of(net, wanted.op.configs, "'" + o.file + "'")
                     : search::derive_by_volume(net);
      m = search::inherit(net, d);
      what = "search checkpoint: the derived network";
      what += configured ? " of the configuration" : "";
      what += ", weights inherited";
    } else {
      m = train::load_model(o.file);
      what = "cakes checkpoint";
    }
  } else {
    const auto file = models::read_torch_file(o.file);
    const auto kind = torch_file_kind(
        file,
        o.file,
        "neither a cakes checkpoint, a file of the paper's code "
        "(base_model.*) nor a torchvision ResNet state dict");
    if (kind == TorchFileKind::paper) {
      std::map<std::string, at::Tensor> sd(
          file.tensors.begin(), file.tensors.end());
      const auto spec = models::paper_network_spec(sd, o.file);
      if (spec.op.op == "super") {
        m = derived_from_paper_supernet(spec, sd, o.file);
        what = paper_supernet_what(sd) + ", " + file.form +
               ": the derived network, weights inherited";
      } else {
        m = models::import_paper_model(file, o.file);
        what = "the paper's layout, " + file.form;
      }
    } else {
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
  const std::string accepted =
      "not what search --init takes: a torchvision 2D ResNet state dict, a "
      "cakes checkpoint of " +
      supernet.spec.network + " with op conv3d, or a search super-network of " +
      supernet.spec.network + " with candidates " +
      kernels_str(supernet.spec.op.candidates) +
      " (the paper's code's or a cakes search.ckpt)";
  // The super-network in the file, then copied by name into ours: the
  // classifier re-initialised for another class count, any other difference
  // an error.
  models::Model from;
  std::string what;
  train::CheckpointMeta meta;
  bool conv3d = false;
  if (is_cakes_checkpoint(o.file, meta)) {
    if (meta.network.op.op == "conv3d") {
      from = train::load_model(o.file);
      conv3d = true;
      what = "cakes checkpoint, op conv3d: each candidate the 3x3x3 kernel "
             "shrunk onto it";
    } else if (meta.sections.count("search")) {
      from = search::load_search_checkpoint(o.file, nullptr).model;
      what = "cakes search checkpoint";
    } else {
      throw std::invalid_argument(
          "'" + o.file + "', a cakes checkpoint of " + meta.network.describe() +
          ", is " + accepted);
    }
  } else {
    const auto file = models::read_torch_file(o.file);
    if (torch_file_kind(file, o.file, accepted) == TorchFileKind::torchvision) {
      models::inflate_2d_resnet(i3d_of(supernet, o.file), o.file);
      std::printf(
          "%s: torchvision 2D ResNet inflated into the super-network\n",
          o.file.c_str());
      return;
    }
    std::map<std::string, at::Tensor> sd(
        file.tensors.begin(), file.tensors.end());
    const auto spec = models::paper_network_spec(sd, o.file);
    if (spec.op.op != "super")
      throw std::invalid_argument(
          "'" + o.file + "', the paper's " + spec.describe() + ", is " +
          accepted);
    from = search::build_supernet(spec, spec.op.candidates).model;
    load_paper_supernet(from, sd, o.file);
    what = paper_supernet_what(sd);
  }
  auto want = supernet.spec;
  want.num_classes = from.spec.num_classes;
  if (conv3d)
    want.op = from.spec.op;
  const auto diff = models::difference(from.spec, want);
  if (!diff.empty())
    throw std::invalid_argument(
        "'" + o.file + "' holds another network than the search (" + diff +
        ")");
  if (conv3d)
    load_conv3d_into_supernet(from, supernet, "'" + o.file + "'");
  else
    copy_tensors(from, supernet, "'" + o.file + "'", true);
  std::printf(
      "%s (%s): loaded into the super-network\n", o.file.c_str(), what.c_str());
  if (from.spec.num_classes != supernet.spec.num_classes)
    print_reinitialised(
        o.file, supernet.spec.num_classes, from.spec.num_classes);
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
