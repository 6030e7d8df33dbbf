// Search (docs/CAKES.md §4): super-network shapes, the C sub-gradient, P's
// subsets, derivation (widths, determinism, ties, budgets), weight inheritance
// and errors. The end-to-end search is in test_search_end_to_end.cpp.
#include "cakes/search/search.h"

#include "cakes/data/dataset.h"
#include "cakes/models/network_config.h"
#include "cakes/train/checkpoint.h"
#include "cakes/train/losses.h"
#include "cakes/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <iostream>

namespace {

namespace fs = std::filesystem;
using namespace cakes;
using namespace cakes::search;

SuperNet small(
    const std::string& network,
    const std::string& cands,
    int64_t classes = 2,
    int64_t in_channels = 1) {
  models::NetworkSpec a;
  a.network = network;
  a.num_classes = classes;
  a.in_channels = in_channels;
  return build_supernet(a, parse_candidates(cands));
}

std::vector<std::vector<double>> random_importance(const SuperNet& net) {
  torch::manual_seed(7);
  std::vector<std::vector<double>> imp;
  for (const auto& l : net.layers) {
    auto g =
        torch::rand({int64_t(net.candidates.size()) * l.width}, torch::kDouble);
    imp.emplace_back(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  return imp;
}

TEST(SuperNet, ShapesPerCandidateSet) {
  struct Case {
    std::string network, cands;
    size_t searched;
    int64_t n;
  };
  for (const Case& c : std::vector<Case>{
           {"i3d_resnet18", "video_12d", 16, 2},
           {"i3d_resnet18", "video_23d", 16, 2},
           {"i3d_resnet18", "video_123d", 16, 3},
           {"res_encoder_decoder", "volumetric_2d", 15, 3},
           {"res_encoder_decoder", "volumetric_1d", 15, 3},
           {"res_encoder_decoder", "volumetric_all", 15, 7},
           {"res_encoder_decoder", "3x3x3,1x1x3", 15, 2}}) {
    SCOPED_TRACE(c.network + " " + c.cands);
    auto net = small(c.network, c.cands);
    // Every position is searched, those feeding a residual addition too.
    ASSERT_EQ(net.layers.size(), c.searched);
    ASSERT_EQ(net.layers.size(), net.positions.size());
    size_t summed = 0;
    for (const auto& l : net.layers) {
      EXPECT_EQ(l.layer.ptr()->bn()->weight.size(0), c.n * l.width);
      const auto& ws = l.layer->stages().at(0);
      ASSERT_EQ(int64_t(ws.size()), c.n);
      for (size_t k = 0; k < ws.size(); ++k) {
        EXPECT_EQ(ws[k].size(0), l.width);
        EXPECT_EQ(ws[k].size(2), net.candidates[k].d);
        EXPECT_EQ(ws[k].size(3), net.candidates[k].h);
        EXPECT_EQ(ws[k].size(4), net.candidates[k].w);
      }
      EXPECT_EQ(l.summed, net.positions[l.position].reader.empty());
      if (l.summed) {
        ++summed;
        // The addition needs C_out channels: the candidates are summed.
        EXPECT_EQ(l.layer->out_channels(), l.width);
      } else {
        EXPECT_EQ(l.layer->out_channels(), c.n * l.width);
        for (const auto& w : l.reader->stages().at(0))
          EXPECT_EQ(w.size(1), c.n * l.width);
      }
    }
    // ResNet-18: the second conv of its 8 basic blocks; encoder-decoder: the
    // stem and the 7 blocks' second convs.
    EXPECT_EQ(summed, 8u);
    net.model.module->eval();
    torch::NoGradGuard ng;
    const auto x = net.model.spec.video() ? torch::randn({1, 3, 2, 32, 32})
                                          : torch::randn({1, 1, 16, 16, 16});
    const auto y = net.model.forward(x);
    EXPECT_EQ(y.size(1), 2);
  }
  // ResNet-50: every bottleneck position is searched.
  EXPECT_EQ(small("i3d_resnet50", "video_23d").layers.size(), 16u);
}

// A summed layer's view adds the candidates' normalised outputs per output
// index, and under a selection sends each kept channel to its index.
TEST(SuperNet, ChannelViewSumsPerIndexAndSelects) {
  torch::manual_seed(3);
  const auto x = torch::randn({2, 4, 3, 5, 5});
  nn::OpLayer layer(
      nn::OpLayerOptions(4, Config::parse("3x3x3:2,1x3x3:2")).relu(false));
  layer->eval();
  {
    torch::NoGradGuard ng;
    layer->bn()->weight.uniform_(0.5, 2);
    layer->bn()->bias.uniform_(-1, 1);
  }
  torch::NoGradGuard ng;
  const auto y = layer->forward(x); // all 4 channels
  auto view = std::make_shared<ChannelView>(/*summed_width=*/2);
  layer->set_extension(view);
  const auto ys = layer->forward(x);
  ASSERT_EQ(ys.size(1), 2);
  EXPECT_TRUE(torch::allclose(ys, y.narrow(1, 0, 2) + y.narrow(1, 2, 2)));
  EXPECT_EQ(layer->cost("l", {1, 4, 3, 5, 5}).output_shape[1], 2);
  // Channels 1 (3x3x3, index 1) and 2 (1x3x3, index 0).
  view->outputs = torch::tensor({1, 2}, torch::kLong);
  const auto ysel = layer->forward(x);
  EXPECT_TRUE(torch::allclose(ysel.select(1, 0), y.select(1, 2)));
  EXPECT_TRUE(torch::allclose(ysel.select(1, 1), y.select(1, 1)));
  // A residual is added after the sum.
  const auto r = torch::randn_like(ys);
  view->outputs = at::Tensor();
  EXPECT_TRUE(torch::allclose(layer->forward(x, r), ys + r));
}

TEST(Search, L1SubgradientExactlyAsSpecified) {
  auto net = small("i3d_resnet18", "3x3x3,1x3x3,3x1x1");
  torch::manual_seed(1);
  for (auto& l : net.layers) { // signs of both kinds
    torch::NoGradGuard ng;
    l.layer.ptr()->bn()->weight.uniform_(-1, 1);
  }
  for (bool reweight : {true, false}) {
    SCOPED_TRACE(reweight);
    net.model.module->zero_grad();
    const auto x = torch::randn({2, 3, 2, 32, 32});
    net.model.forward(x).sum().backward();
    std::vector<torch::Tensor> before;
    for (auto& l : net.layers)
      before.push_back(l.layer.ptr()->bn()->weight.grad().clone());
    const double s = 1e-2;
    add_l1_subgradient(net, s, reweight);
    const std::vector<double> w =
        reweight ? std::vector<double>{9.0 / 13, 3.0 / 13, 1.0 / 13}
                 : std::vector<double>{1, 1, 1};
    for (size_t i = 0; i < net.layers.size(); ++i) {
      const auto& l = net.layers[i];
      const auto g = l.layer.ptr()->bn()->weight;
      for (int64_t c = 0; c < g.size(0); ++c) {
        const double expected =
            before[i][c].item<double>() +
            s * w[c / l.width] * (g[c].item<double>() > 0 ? 1 : -1);
        // float32 gradients: ~1 ulp of relative error; a wrong weight
        // would be off by at least s / 13 = 7.7e-4.
        ASSERT_NEAR(
            g.grad()[c].item<double>(),
            expected,
            1e-6 * (1 + std::abs(expected)))
            << l.name << " channel " << c;
      }
    }
  }
}

// docs/CAKES.md §4: a P step trains only its subset. With momentum and weight
// decay (applied to every parameter here, BatchNorm included), over several
// steps with different subsets: a channel kept in an earlier step and dropped
// now is where momentum and decay would move it, so the test checks such
// channels occur.
TEST(Search, PSubsetHasExactlyCOutAndTouchesOnlyItsParameters) {
  auto net = small("i3d_resnet18", "video_123d");
  std::mt19937_64 rng(3);
  net.model.module->train();
  torch::optim::SGD sgd(
      net.model.module->parameters(),
      torch::optim::SGDOptions(0.5).momentum(0.9).weight_decay(1e-2));
  const auto target = torch::tensor({0, 1}, torch::kLong);
  torch::manual_seed(11);
  std::vector<std::vector<bool>> ever_kept;
  int64_t kept_before_dropped_now = 0;
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const auto kept = select_random(net, rng);
    ASSERT_EQ(kept.size(), net.layers.size());
    for (size_t l = 0; l < kept.size(); ++l) {
      EXPECT_EQ(int64_t(kept[l].size()), net.layers[l].width);
      EXPECT_TRUE(std::is_sorted(kept[l].begin(), kept[l].end()));
      EXPECT_EQ(
          std::adjacent_find(kept[l].begin(), kept[l].end()), kept[l].end());
      EXPECT_LT(kept[l].back(), 3 * net.layers[l].width);
      if (net.layers[l].summed) { // one candidate per output index
        std::vector<int64_t> j;
        for (auto i : kept[l])
          j.push_back(i % net.layers[l].width);
        std::sort(j.begin(), j.end());
        EXPECT_EQ(std::adjacent_find(j.begin(), j.end()), j.end());
      }
    }
    std::map<std::string, torch::Tensor> before;
    for (const auto& kv : net.model.module->named_parameters())
      before[kv.key()] = kv.value().detach().clone();
    for (const auto& kv : net.model.module->named_buffers())
      before[kv.key()] = kv.value().detach().clone();
    sgd.zero_grad();
    train::cross_entropy(
        net.model.forward(torch::randn({2, 3, 2, 32, 32})), target)
        .backward();
    DroppedChannels dropped_channels(net, kept, sgd);
    sgd.step();
    dropped_channels.restore();
    ever_kept.resize(kept.size());
    for (size_t l = 0; l < kept.size(); ++l) {
      const auto& L = net.layers[l];
      const int64_t c = L.width;
      auto dropped = torch::ones({3 * c}, torch::kBool);
      dropped.index_fill_(0, torch::tensor(kept[l]), false);
      auto kept_mask = dropped.logical_not();
      ever_kept[l].resize(size_t(3 * c), false);
      for (int64_t i = 0; i < 3 * c; ++i)
        kept_before_dropped_now +=
            ever_kept[l][size_t(i)] && dropped[i].item<bool>();
      for (auto i : kept[l])
        ever_kept[l][size_t(i)] = true;
      for (const std::string leaf :
           {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}) {
        const auto now =
            net.model.module->named_parameters().contains(L.name + "." + leaf)
                ? net.model.module->named_parameters()[L.name + "." + leaf]
                : net.model.module->named_buffers()[L.name + "." + leaf];
        const auto old = before.at(L.name + "." + leaf);
        EXPECT_TRUE(
            now.masked_select(dropped).equal(old.masked_select(dropped)))
            << L.name << " " << leaf;
        EXPECT_FALSE(
            now.masked_select(kept_mask).equal(old.masked_select(kept_mask)))
            << L.name << " " << leaf;
      }
      for (size_t n = 0; n < 3; ++n) {
        const std::string name = L.name + ".weight_" + net.candidates[n].str();
        const auto now = net.model.module->named_parameters()[name];
        const auto d = dropped.narrow(0, n * c, c);
        const auto k = d.logical_not();
        EXPECT_TRUE(now.index({d}).equal(before.at(name).index({d}))) << name;
        if (k.any().item<bool>()) {
          EXPECT_FALSE(now.index({k}).equal(before.at(name).index({k})))
              << name;
        }
      }
      const std::string reader = net.positions[L.position].reader + ".weight_";
      for (const auto& kv : net.model.module->named_parameters()) {
        if (kv.key().rfind(reader, 0) != 0)
          continue;
        using torch::indexing::Slice;
        EXPECT_TRUE(kv.value()
                        .index({Slice(), dropped})
                        .equal(before.at(kv.key()).index({Slice(), dropped})))
            << kv.key();
      }
    }
  }
  EXPECT_GT(kept_before_dropped_now, 0);
}

TEST(Derive, WidthsPreservedDeterministicTiesToCheaper) {
  auto net = small("i3d_resnet18", "video_123d");
  const auto cm = mac_cost_model(net, {1, 3, 8, 32, 32});
  const auto imp = random_importance(net);
  const auto a = derive(net, imp, cm), b = derive(net, imp, cm);
  EXPECT_EQ(a.kept, b.kept);
  ASSERT_EQ(a.configs.size(), net.positions.size());
  for (size_t i = 0; i < net.positions.size(); ++i)
    EXPECT_EQ(a.configs[i].out_channels(), net.positions[i].out_channels);
  for (size_t l = 0; l < net.layers.size(); ++l) {
    const int64_t c = net.layers[l].width;
    ASSERT_EQ(int64_t(a.kept[l].size()), c);
    if (net.layers[l].summed) {
      // Per output index j the candidate with the largest importance.
      for (auto i : a.kept[l])
        for (int64_t n = 0; n < 3; ++n)
          EXPECT_GE(imp[l][i], imp[l][n * c + i % c]);
      continue;
    }
    // The kept channels are the top C_out by importance.
    std::vector<double> sorted = imp[l];
    std::sort(sorted.rbegin(), sorted.rend());
    for (auto i : a.kept[l])
      EXPECT_GE(imp[l][i], sorted[c - 1]);
  }
  // Equal importance everywhere: every layer takes the cheapest candidate.
  std::vector<std::vector<double>> flat;
  for (const auto& v : imp)
    flat.emplace_back(v.size(), 0.5);
  const auto t = derive(net, flat, cm);
  for (size_t l = 0; l < net.layers.size(); ++l)
    EXPECT_EQ(
        t.configs[net.layers[l].position].str(),
        "3x3x3:0,1x3x3:0,3x1x1:" + std::to_string(net.layers[l].width));
}

void expect_budget(
    const std::string& network,
    const std::string& cands,
    std::vector<int64_t> input,
    double fraction,
    int64_t classes,
    int64_t in_channels) {
  SCOPED_TRACE(network);
  auto net = small(network, cands, classes, in_channels);
  const auto cm = mac_cost_model(net, input);
  // Random scales that favour the larger kernels, so that the budget binds.
  auto imp = random_importance(net);
  for (size_t l = 0; l < net.layers.size(); ++l)
    for (size_t i = 0; i < imp[l].size(); ++i)
      imp[l][i] +=
          double(net.candidates[i / net.layers[l].width].volume()) / 27.0;
  const double target = fraction * cm.reference;
  const auto d = derive(net, imp, cm, target);
  EXPECT_LE(d.cost, target);
  // The budget is used, not wasted (unless the plain derivation fits).
  const double plain = derive(net, imp, cm).cost;
  EXPECT_GT(d.cost, 0.97 * std::min(target, plain));
  EXPECT_GT(plain, target) << "the budget should bind in this test";
  // The cost model agrees with the derived network's own cost report, and
  // its reference with the 3x3x3 network's.
  models::NetworkSpec a = net.model.spec;
  a.op = OpSpec{"cakes", d.configs, net.candidates};
  EXPECT_DOUBLE_EQ(double(models::build(a).cost(input).total_macs()), d.cost);
  EXPECT_THROW(
      {
        try {
          derive(net, imp, cm, 0.05 * cm.reference);
        } catch (const std::invalid_argument& e) {
          EXPECT_NE(
              std::string(e.what()).find("infeasible"), std::string::npos);
          EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
          throw;
        }
      },
      std::invalid_argument);
}

TEST(Derive, BudgetI3DResNet50AtHalfThe3DMacs) {
  auto net = small("i3d_resnet50", "video_123d", 174);
  const auto cm = mac_cost_model(net, {1, 3, 8, 224, 224});
  // docs/CAKES.md §9: the 3D network costs 62.3 GMACs.
  EXPECT_NEAR(cm.reference / 1e9, 62.3, 0.623);
  expect_budget("i3d_resnet50", "video_123d", {1, 3, 8, 224, 224}, 0.5, 174, 3);
}

TEST(Derive, BudgetVolumetricAt04) {
  expect_budget(
      "res_encoder_decoder", "volumetric_all", {1, 1, 64, 64, 64}, 0.4, 2, 1);
}

// A budget above what importance alone picks is spent, not left unused: with
// importances that do not favour any candidate, 6 of the 7 volumetric
// candidates are cheap and the plain choice costs about a third of 3D.
TEST(Derive, BudgetAboveThePlainChoiceIsSpent) {
  auto net = small("res_encoder_decoder", "volumetric_all", 2, 1);
  const std::vector<int64_t> input = {1, 1, 64, 64, 64};
  const auto cm = mac_cost_model(net, input);
  const auto imp = random_importance(net);
  const auto plain = derive(net, imp, cm);
  ASSERT_LT(plain.cost, 0.5 * cm.reference);
  int64_t plain_3d = 0;
  for (const auto& c : plain.counts)
    plain_3d += c[0];
  for (double fraction : {0.5, 0.7, 0.9}) {
    SCOPED_TRACE(fraction);
    const auto d = derive(net, imp, cm, fraction * cm.reference);
    EXPECT_LE(d.cost, fraction * cm.reference);
    EXPECT_GT(d.cost, 0.95 * fraction * cm.reference);
    int64_t kept_3d = 0;
    for (const auto& c : d.counts)
      kept_3d += c[0];
    EXPECT_GT(kept_3d, plain_3d); // the budget went to 3x3x3 channels
    models::NetworkSpec a = net.model.spec;
    a.op = OpSpec{"cakes", d.configs, net.candidates};
    EXPECT_DOUBLE_EQ(double(models::build(a).cost(input).total_macs()), d.cost);
  }
  // Above the all-3x3x3 network: that network.
  const auto all = derive(net, imp, cm, 1.5 * cm.reference);
  EXPECT_DOUBLE_EQ(all.cost, cm.reference);
  for (const auto& l : net.layers)
    EXPECT_EQ(
        all.configs[l.position].str().rfind(
            "3x3x3:" + std::to_string(l.width) + ",", 0),
        0u)
        << all.configs[l.position].str();
}

// Exactly: the derived network with inherited weights computes the
// super-network with the dropped channels' BatchNorm outputs zeroed. Covers
// both kinds of searched layer: with a reader (the reader's columns are
// sliced) and summed into a residual addition (one candidate per output index,
// put back in place by the derived configuration's output_index).
TEST(Inherit, DerivedEqualsSuperWithDroppedBnOutputsZeroed) {
  for (const auto& [network, cands] :
       std::vector<std::pair<std::string, std::string>>{
           {"i3d_resnet18", "video_123d"},
           {"res_encoder_decoder", "3x3x3,1x3x3,3x1x1"}}) {
    SCOPED_TRACE(network);
    auto net = small(network, cands);
    const bool video = net.model.spec.video();
    torch::manual_seed(5);
    {
      torch::NoGradGuard ng;
      for (auto& l : net.layers) {
        auto bn = l.layer.ptr()->bn();
        bn->weight.uniform_(-1, 1);
        bn->bias.uniform_(-0.5, 0.5);
        bn->running_mean.uniform_(-0.2, 0.2);
        bn->running_var.uniform_(0.5, 2);
      }
    }
    net.model.module->eval();
    const auto input = video ? std::vector<int64_t>{1, 3, 2, 32, 32}
                             : std::vector<int64_t>{1, 1, 16, 16, 16};
    const auto d =
        derive(net, random_importance(net), mac_cost_model(net, input));
    // The summed layers interleave candidates, so some need a reordering.
    size_t reordered = 0;
    for (const auto& l : net.layers)
      reordered += !d.configs[l.position].output_index().empty();
    EXPECT_GT(reordered, 0u);
    // The configuration file describes the same network.
    const auto file = models::parse_network_config(config_json(net, d));
    ASSERT_EQ(file.blocks.size(), d.configs.size());
    for (size_t i = 0; i < d.configs.size(); ++i)
      EXPECT_EQ(file.blocks[i], d.configs[i]) << i;
    auto derived = inherit(net, d);
    derived.module->eval();
    const auto x = video ? torch::randn({2, 3, 4, 32, 32})
                         : torch::randn({2, 1, 16, 16, 16});
    torch::NoGradGuard ng;
    const auto y_derived = derived.forward(x);
    select(net, d.kept); // the selection path computes the same network
    const auto y_selected = net.model.forward(x);
    clear_selection(net);
    for (size_t l = 0; l < net.layers.size(); ++l) {
      auto drop = torch::ones({3 * net.layers[l].width}, torch::kBool);
      drop.index_fill_(0, torch::tensor(d.kept[l]), false);
      auto bn = net.layers[l].layer.ptr()->bn();
      bn->weight.masked_fill_(drop, 0);
      bn->bias.masked_fill_(drop, 0);
    }
    const auto y_super = net.model.forward(x);
    EXPECT_TRUE(torch::allclose(y_derived, y_super, 1e-4, 1e-4))
        << (y_derived - y_super).abs().max();
    EXPECT_TRUE(torch::allclose(y_selected, y_super, 1e-4, 1e-4))
        << (y_selected - y_super).abs().max();
    // Folding the BatchNorms (deployment) keeps the reordering right.
    derived.fold_batchnorm();
    EXPECT_TRUE(torch::allclose(derived.forward(x), y_super, 1e-3, 1e-3));
  }
}

TEST(SearchErrors, OneLineMessages) {
  auto one_line = [](const std::function<void()>& fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const std::exception& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(part), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  };
  one_line(
      [] { parse_candidates("3x3x3,2x3x3"); }, "unknown candidate '2x3x3'");
  one_line([] { parse_candidates("3x3x3,spatial"); }, "unknown candidate");
  const auto dir = fs::temp_directory_path() / "cakes_search_errors";
  fs::create_directories(dir);
  const std::string path = (dir / "plain.ckpt").string();
  auto module = std::make_shared<torch::nn::Module>();
  module->register_parameter("w", torch::zeros({2}));
  models::Model m;
  m.module = module;
  m.forward = [](const at::Tensor& x) { return x; };
  m.spec.network = "i3d_resnet18";
  train::Trainer(m, train::cross_entropy, {}).save_checkpoint(path);
  one_line([&] { read_search_meta(path); }, "is not a search checkpoint");
  fs::remove_all(dir);
}

} // namespace
