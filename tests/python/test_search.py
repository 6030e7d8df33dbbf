"""Search from Python: the C sub-gradient, P's still dropped channels, and
derivation agreeing with the C++ CLI's `cakes derive` on the same weights."""
import copy
import json
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cakes
from cakes.nn import SuperConv3d


class Net(nn.Module):
    """conv1 is read only by conv2 (a reader layer); conv2 feeds a residual
    addition (a summed layer)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 6, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(6)
        self.conv2 = nn.Conv3d(6, 6, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(6)
        self.skip = nn.Conv3d(3, 6, 1, bias=False)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)) + self.skip(x))
        return self.fc(y.mean((2, 3, 4)))


def supernet(seed=0):
    torch.manual_seed(seed)
    net = Net()
    cakes.convert(net, "video_123d", "super")
    with torch.no_grad():
        for l in cakes.search.super_layers(net).values():
            l.bn.weight.uniform_(-1, 1)
    return net


def test_cost_priority_adds_the_weighted_sign_of_gamma():
    net = supernet()
    x = torch.randn(2, 3, 3, 6, 6)
    net(x).sum().backward()
    before = {n: l.bn.weight.grad.clone() for n, l in cakes.search.super_layers(net).items()}
    cakes.search.CostPriority(net, s=1e-2, reweight=True).apply()
    for n, l in cakes.search.super_layers(net).items():
        w = torch.tensor([27 / 39] * 6 + [9 / 39] * 6 + [3 / 39] * 6)
        torch.testing.assert_close(l.bn.weight.grad - before[n], 1e-2 * w * l.bn.weight.sign())
    net.zero_grad(set_to_none=True)
    cakes.search.CostPriority(net, s=1e-2, reweight=False).apply()  # no gradient yet: made
    for l in cakes.search.super_layers(net).values():
        torch.testing.assert_close(l.bn.weight.grad, 1e-2 * l.bn.weight.sign())


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=1e-2),
])
def test_performance_priority_trains_only_the_subset(make_opt):
    net = supernet(1)
    opt = make_opt(net.parameters())
    perf = cakes.search.PerformancePriority(net, seed=0)
    layers = cakes.search.super_layers(net)
    x, y = torch.randn(4, 3, 3, 6, 6), torch.tensor([0, 1, 2, 0])
    for step in range(3):
        params = {n: p.detach().clone() for n, p in net.named_parameters()}
        state = {n: {k: v.clone() for k, v in opt.state[p].items() if torch.is_tensor(v)}
                 for n, p in net.named_parameters() if p in opt.state}
        stats = {n: l.bn.running_mean.clone() for n, l in layers.items()}
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        perf.step(opt)
        for name, l in layers.items():
            kept = l.kept
            assert kept.numel() == l.width  # exactly C_out of N * C_out
            if l.summed:
                assert sorted((kept % l.width).tolist()) == list(range(l.width))
            dropped = torch.tensor([i for i in range(3 * l.width) if i not in set(kept.tolist())])
            for leaf in ("bn.weight", "bn.bias"):
                p = dict(net.named_parameters())[f"{name}.{leaf}"]
                torch.testing.assert_close(p[dropped], params[f"{name}.{leaf}"][dropped], rtol=0, atol=0)
                assert not torch.equal(p[kept], params[f"{name}.{leaf}"][kept])
                if step > 0:
                    for k, v in state[f"{name}.{leaf}"].items():
                        if v.shape == p.shape:
                            torch.testing.assert_close(opt.state[p][k][dropped], v[dropped], rtol=0, atol=0)
            torch.testing.assert_close(l.bn.running_mean[dropped], stats[name][dropped], rtol=0, atol=0)
            for i, w in enumerate(l.weights):
                local = dropped[(dropped // l.width) == i] - i * l.width
                torch.testing.assert_close(w[local], params[f"{name}.weights.{i}"][local], rtol=0, atol=0)
            if l.reader:
                for i in range(3):
                    key = f"{l.reader}.weights.{i}"
                    reader = dict(net.named_parameters())[key]
                    torch.testing.assert_close(reader[:, dropped], params[key][:, dropped], rtol=0, atol=0)
        assert not layers["conv1"].summed and layers["conv2"].summed
    perf.stop()
    assert all(l.kept is None for l in layers.values())


def test_derive_under_budgets_never_exceeds_them():
    net = supernet(2)
    size = (1, 3, 3, 6, 6)
    free = cakes.derive(net, input_size=size)
    for fraction in (0.9, 0.5, 0.2):
        d = cakes.derive(net, target_macs=fraction, input_size=size)
        assert d.cost <= fraction * d.reference
        assert cakes.macs(d.model, size) == round(d.cost)
    # A budget above the plain choice's cost is spent on costlier candidates.
    assert free.cost < 0.9 * free.reference
    assert free.cost < cakes.derive(net, target_macs=0.9, input_size=size).cost
    with pytest.raises(cakes.ConfigError, match="is infeasible: the cheapest derivation"):
        cakes.derive(net, target_macs=0.01, input_size=size)
    table = cakes.search.profile(net, size, repeats=1)
    lowest = table["rest_ms"] + sum(min(r) for r in table["layer_ms"])
    highest = table["rest_ms"] + sum(max(r) for r in table["layer_ms"])
    target = lowest + 0.3 * (highest - lowest)
    d = cakes.derive(net, target_latency=target, latency_table=table)
    assert d.unit == "ms" and d.cost <= target


def load_cpp_search_checkpoint(path):
    """The weights and metadata of a search.ckpt written by `cakes search` (the
    one checkpoint format, docs/WEIGHTS.md: a TorchScript archive with
    submodule "model" and attribute "meta/json", whose "network" describes the
    super-network and whose "search" section has the input sizes)."""
    archive = torch.jit.load(str(path), map_location="cpu")
    doc = json.loads(archive._c.getattr("meta/json"))
    assert doc["format"] == "cakes checkpoint"
    meta = dict(doc["network"], input_sizes=doc["search"]["input_sizes"])
    tensors = dict(archive.model.named_parameters())
    tensors.update(dict(archive.model.named_buffers()))
    return meta, tensors


def cpp_name(ours: str, candidates) -> str:
    """Our module path -> the C++ network's (OpLayers hold their norm as .bn and
    name group weights weight_<DxHxW>)."""
    name = re.sub(r"^bn1\.", "conv1.bn.", ours)
    name = re.sub(r"\.downsample\.0\.weight$", ".downsample.weight_1x1x1", name)
    name = re.sub(r"\.downsample\.1\.", ".downsample.bn.", name)
    name = re.sub(r"^conv1\.weight$", "conv1.weight_1x7x7", name)
    m = re.search(r"\.weights\.(\d+)$", name)
    if m:
        name = name[:m.start()] + f".weight_{candidates[int(m.group(1))]}"
    return name


def test_derivation_agrees_with_the_cpp_cli(tmp_path, cli):
    cli("synth", "--out", tmp_path / "synth", "--videos", 8, "--val-videos", 4, "--frames", 8, "--size", 24,
        "--seed", 3)
    s = tmp_path / "synth"
    cli("search", "--net", "i3d_resnet18", "--width", 4, "--candidates", "video_123d", "--mode", "C",
        "--sparsity", "1e-2", "--epochs", 1, "--batch", 4, "--workers", 1, "--threads", 2,
        "--frames-list", s / "train.txt", "--categories", s / "category.txt", "--frames", 4, "--size", 16,
        "--out-dir", tmp_path / "search")
    meta, tensors = load_cpp_search_checkpoint(tmp_path / "search" / "search.ckpt")
    cands = cakes.parse_candidates(meta["candidates"])

    model = cakes.models.I3DResNet(18, meta["num_classes"], "conv3d", width=4)
    cakes.convert(model, cands, "super")
    ours = dict(model.named_parameters())
    ours.update(dict(model.named_buffers()))
    with torch.no_grad():
        for name, t in ours.items():
            src = tensors[cpp_name(name, cands)]
            assert src.shape == t.shape, name
            t.copy_(src)

    for i, (flags, kwargs) in enumerate(((["--target-macs", "0.5"], dict(target_macs=0.5)),
                                         (["--target-macs", "0.3"], dict(target_macs=0.3)),
                                         # above the plain choice: spent on costlier kernels
                                         (["--target-macs", "0.9"], dict(target_macs=0.9)),
                                         ([], {}))):
        out = tmp_path / f"cpp{i}.json"  # derive keeps an existing --out
        cli("derive", "--from", tmp_path / "search" / "search.ckpt", "--out", out, *flags)
        cpp = cakes.NetworkConfig.load(out)
        derived = cakes.derive(model, input_size=meta["input_sizes"], **kwargs)
        assert derived.config.blocks == cpp.blocks, flags
        # The derived network's MACs are what `cakes info` counts for the file.
        info = json.loads(cli("info", "--net", "i3d_resnet18", "--width", 4, "--config", out, "--frames", 4,
                              "--size", 16, "--classes", meta["num_classes"], "--json").stdout)
        assert cakes.macs(derived.model, meta["input_sizes"]) == info["total_macs"]
