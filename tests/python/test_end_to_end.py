"""End to end from Python: a torchvision-style 3D ResNet-18 written here ->
cakes.convert super-network -> one epoch of cost-priority and one of
performance-priority search on tiny synthetic clips -> derive under a MACs
budget -> the derived network equals the super-network's selected
sub-network -> fine-tune a few steps -> the saved configuration's
`cakes info --config` agrees with cakes.macs."""
import json

import torch
import torch.nn as nn
import torch.nn.functional as F

import cakes


class BasicBlock(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, width, 3, (1, stride, stride), 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(width)
        self.downsample = None
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(nn.Conv3d(cin, width, 1, (1, stride, stride), bias=False),
                                            nn.BatchNorm3d(width))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class R3D18(nn.Module):
    """torchvision's r3d_18 names, in the I3D layout of docs/CAKES.md §3 (1x7x7 stem and
    max-pool, no temporal striding, per-frame classifier averaged over time):
    the layout of `cakes info --net i3d_resnet18`."""

    def __init__(self, width=8, num_classes=4):
        super().__init__()
        self.conv1 = nn.Conv3d(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        cin, layers = width, []
        for s in range(4):
            w = width << s
            layers.append(nn.Sequential(BasicBlock(cin, w, 1 if s == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((3, 4)).transpose(1, 2)).mean(1)


def clips(n, frames=4, size=32, seed=0):
    """A bright square moving left, right, up or down (the class) over noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, frames, size, size, generator=g) * 0.1
    y = torch.randint(0, 4, (n,), generator=g)
    for i in range(n):
        r, c = (int(v) for v in torch.randint(10, size - 10, (2,), generator=g))
        dr, dc = [(0, -2), (0, 2), (-2, 0), (2, 0)][int(y[i])]
        for t in range(frames):
            rr, cc = r + dr * t, c + dc * t
            x[i, :, t, rr - 3:rr + 3, cc - 3:cc + 3] += 1.0
    return x, y


def epoch(model, data, optimizer, after_backward=None, step=None):
    model.train()
    x, y = data
    for i in range(0, len(y), 8):
        loss = F.cross_entropy(model(x[i:i + 8]), y[i:i + 8])
        optimizer.zero_grad()
        loss.backward()
        if after_backward:
            after_backward()
        if step is None:
            optimizer.step()
        else:
            step(optimizer)
    return float(loss)


def test_convert_search_derive_finetune_and_cli_costs(tmp_path, cli):
    torch.manual_seed(0)
    model = R3D18()
    report = cakes.convert(model, candidates="video_123d", mode="super")
    # Every 3x3x3 conv is searched; the first conv of each block reads into the
    # second, the second feeds the residual addition.
    assert len(report.converted) == 16
    supers = cakes.search.super_layers(model)
    assert sum(not l.summed for l in supers.values()) == 8
    data = clips(32)

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    cost = cakes.search.CostPriority(model, s=1e-3)
    epoch(model, data, opt, after_backward=cost.apply)

    perf = cakes.search.PerformancePriority(model, seed=1)
    epoch(model, data, opt, step=perf.step)
    perf.stop()

    input_size = (1, 3, 4, 32, 32)
    derivation = cakes.derive(model, target_macs=0.5, input_size=input_size)
    config, derived = derivation
    assert derivation.cost <= 0.5 * derivation.reference
    assert [b.conv_channels for b in config.blocks] == [l.width for l in supers.values()]

    # Right after inheritance the derived network computes the super-network's
    # selected sub-network.
    x = clips(4, seed=9)[0]
    model.eval()
    cakes.search.select(model, derivation.kept)
    with torch.no_grad():
        torch.testing.assert_close(derived.eval()(x), model(x), rtol=1e-4, atol=1e-5)
    cakes.search.clear_selection(model)

    # Fine-tuning: the derived network trains.
    opt = torch.optim.SGD(derived.parameters(), lr=0.05, momentum=0.9)
    before = [p.detach().clone() for p in derived.parameters()]
    loss = epoch(derived, data, opt)
    assert torch.isfinite(torch.tensor(loss))
    assert any(not torch.equal(a, b) for a, b in zip(before, derived.parameters()))

    # The configuration file, read by the C++ CLI: the same MACs.
    config.network, config.width = "i3d_resnet18", 8
    path = tmp_path / "config.json"
    config.save(path)
    info = json.loads(cli("info", "--net", "i3d_resnet18", "--width", 8, "--config", path, "--frames", 4,
                          "--size", 32, "--classes", 4, "--json").stdout)
    assert info["total_macs"] == cakes.macs(derived, input_size)
    assert info["total_macs"] == round(derivation.cost)
