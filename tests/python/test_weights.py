"""Weights from elsewhere: torchvision 2D ResNets inflated (docs/CAKES.md §5) into 3D,
CAKES and super-networks, and the paper's checkpoints in every form its code
and PyTorch write them."""
import collections
import json
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import cakes
from cakes.nn import AbsorbedNorm, CakesConv3d, SuperConv3d
from cakes.weights import inflate_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def resnet18_2d():
    torch.manual_seed(0)
    return torchvision.models.resnet18().state_dict()


def test_inflate_resnet18_into_3d_cakes_and_super_networks(resnet18_2d, tmp_path):
    path = tmp_path / "tv18.pt"
    torch.save(resnet18_2d, path)
    sd = resnet18_2d
    # 3D network.
    net = cakes.models.I3DResNet(18, 5, "conv3d")
    fc = net.fc.weight.clone()
    cakes.inflate(net, str(path))
    torch.testing.assert_close(net.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"].unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3)
    torch.testing.assert_close(net.conv1.weight, sd["conv1.weight"].unsqueeze(2))
    torch.testing.assert_close(net.layer2[0].downsample[0].weight, sd["layer2.0.downsample.0.weight"].unsqueeze(2))
    torch.testing.assert_close(net.layer3[1].bn2.running_var, sd["layer3.1.bn2.running_var"])
    assert torch.equal(net.fc.weight, fc)  # the classifier is kept
    # CAKES network: channel j of a group takes the 2D kernel of its output channel.
    net = cakes.models.I3DResNet(18, 5, "cakes")
    cakes.inflate(net, sd)
    w = sd["layer2.1.conv2.weight"]
    layer = net.layer2[1].conv2
    assert str(layer.config) == "3x3x3:43,1x3x3:43,3x1x1:42"
    torch.testing.assert_close(layer.weights[0], inflate_kernel(w[:43], (3, 3, 3)))
    torch.testing.assert_close(layer.weights[1], w[43:86].unsqueeze(2))
    torch.testing.assert_close(layer.weights[2], w[86:].sum((2, 3)).reshape(42, -1, 1, 1, 1).expand(-1, -1, 3, 1, 1) / 3)
    # Super-network: every candidate the whole kernel, norms repeated, readers widened.
    net = cakes.models.I3DResNet(18, 5, "conv3d")
    cakes.convert(net, "video_123d", "super")
    cakes.inflate(net, sd)
    conv1 = net.layer1[0].conv1
    assert isinstance(conv1, SuperConv3d) and isinstance(net.layer1[0].bn1, AbsorbedNorm)
    torch.testing.assert_close(conv1.weights[1], sd["layer1.0.conv1.weight"].unsqueeze(2))
    torch.testing.assert_close(conv1.bn.weight, sd["layer1.0.bn1.weight"].repeat(3))
    reader = net.layer1[0].conv2  # reads 3 x 64 channels
    torch.testing.assert_close(reader.weights[0], inflate_kernel(sd["layer1.0.conv2.weight"], (3, 3, 3)).repeat(1, 3, 1, 1, 1))
    # Mismatches name the key and both shapes; nothing is copied.
    bad = dict(sd)
    bad["layer4.1.bn2.weight"] = torch.ones(7)
    net = cakes.models.I3DResNet(18, 5, "conv3d")
    before = net.conv1.weight.clone()
    with pytest.raises(cakes.ConfigError, match=r"key 'layer4.1.bn2.weight' gives shape \[7\] but .* expects \[512\]"):
        cakes.inflate(net, bad)
    assert torch.equal(net.conv1.weight, before)


def test_inflate_resnet50_bottlenecks():
    torch.manual_seed(1)
    sd = torchvision.models.resnet50().state_dict()
    net = cakes.models.I3DResNet(50, 5, "cakes")
    cakes.inflate(net, sd)
    w = sd["layer4.2.conv2.weight"]
    torch.testing.assert_close(net.layer4[2].conv2.weights[1], w[171:342].unsqueeze(2))
    torch.testing.assert_close(net.layer4[2].conv3.weight, sd["layer4.2.conv3.weight"].unsqueeze(2))


# -- the paper's layout (names from its I3D.py / operations.py / models.py) -----

ORDER = ["3x3x3", "1x3x3", "3x1x1"]


def k3(name):
    return tuple(int(v) for v in name.split("x"))


class ConvT(nn.Module):
    """The paper's convT for the op codes conv3d, conv2d, convp3d and the CAKES
    ones (conv1_2_3d with a configuration, or its search super-networks)."""

    def __init__(self, cin, code, stride, split=None):
        super().__init__()
        st = (1, stride, stride)
        self.code, self.kept = code, None
        if code == "conv3d":
            self.op = nn.Sequential(nn.Conv3d(cin, cin, 3, st, 1, bias=False), nn.BatchNorm3d(cin), nn.ReLU())
        elif code == "conv2d":
            self.op = nn.Sequential(nn.Conv3d(cin, cin, (1, 3, 3), st, (0, 1, 1), bias=False), nn.BatchNorm3d(cin),
                                    nn.ReLU())
        elif code == "convp3d":
            self.op = nn.Sequential(nn.Conv3d(cin, cin, (1, 3, 3), st, (0, 1, 1), bias=False),
                                    nn.Conv3d(cin, cin, (3, 1, 1), 1, (1, 0, 0), bias=False), nn.BatchNorm3d(cin),
                                    nn.ReLU())
        else:
            split = split or {k: cin for k in ORDER}  # a search super-network: every group full width
            self.groups = [(k, split[k]) for k in ORDER if split.get(k, 0) > 0]
            self.convs = nn.ModuleList(nn.Sequential(nn.Conv3d(cin, c, k3(k), st, tuple(e // 2 for e in k3(k)),
                                                               bias=False)) for k, c in self.groups)
            total = sum(c for _, c in self.groups)
            if code == "p_search":
                self.norm = nn.BatchNorm3d(total)
            else:
                self.out = nn.Sequential(nn.BatchNorm3d(total), nn.ReLU())

    def forward(self, x):
        if self.code in ("conv3d", "conv2d", "convp3d"):
            return self.op(x)
        y = torch.cat([c(x) for c in self.convs], 1)
        y = self.norm(y) if self.code == "p_search" else self.out[0](y)
        if self.kept is not None:  # the derived sub-network: C keeps positions, P reads the kept in order
            if self.code == "p_search":
                y = y[:, self.kept]
            else:
                mask = torch.zeros(y.shape[1], dtype=torch.bool)
                mask[self.kept] = True
                y = y * mask.view(1, -1, 1, 1, 1)
        return F.relu(y)


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, code, split):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.convT = ConvT(width, code, stride, split)
        reads = width * 3 if code == "c_search" else width
        self.conv3 = nn.Conv3d(reads, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(width * 4)
        self.downsample = None
        if stride != 1 or cin != width * 4:
            self.downsample = nn.Sequential(nn.Conv3d(cin, width * 4, 1, (1, stride, stride), bias=False),
                                            nn.BatchNorm3d(width * 4))

    def forward(self, x):
        y = self.bn3(self.conv3(self.convT(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class Base(nn.Module):
    def __init__(self, code, splits):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        cin, i = 64, 0
        for s, (n, w) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, w, 2 if s > 0 and b == 0 else 1, code, splits[i] if splits else None))
                cin, i = w * 4, i + 1
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))

    def forward(self, x):
        x = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), (1, 3, 3), (1, 2, 2), (0, 1, 1))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class PaperNet(nn.Module):
    """TemporalModel: base_model, then new_fc per frame averaged over frames
    (the paper's AvgPool2d(7) over a 7x7 map is the spatial mean used here)."""

    def __init__(self, code, splits=None, classes=5):
        super().__init__()
        self.base_model = Base(code, splits)
        self.new_fc = nn.Linear(2048, classes)

    def forward(self, x):
        return self.new_fc(self.base_model(x).mean((3, 4)).transpose(1, 2)).mean(1)


def randomise(net):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


def save_like_the_paper(net, path, form):
    sd = net.state_dict()  # an OrderedDict, as model.state_dict() is
    if form in ("module", "checkpoint", "legacy", "cuda"):
        sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())  # DataParallel
    obj = {"epoch": 3, "arch": "I3D", "state_dict": sd, "best_prec1": 12.5} if form != "plain" else dict(sd)
    if form == "legacy":  # PyTorch 1.0 wrote the pre-zip format
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif form == "cuda":  # storages recorded as saved from a GPU
        import torch.serialization as ser
        original = ser.location_tag
        ser.location_tag = lambda storage: "cuda:0"
        try:
            torch.save(obj, path)
        finally:
            ser.location_tag = original
        assert b"cuda:0" in open(path, "rb").read()
    else:
        torch.save(obj, path)


X = torch.randn(1, 3, 2, 32, 32, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def paper_cakes():
    """A CAKES123D_C network in the paper's layout and its output on X."""
    torch.manual_seed(6)
    presets = json.load(open(os.path.join(ROOT, "configs", "i3d_resnet50_ssv1.json")))["presets"]
    paper = randomise(PaperNet("cakes", presets["CAKES123D_C"]))
    with torch.no_grad():
        return paper, presets["CAKES123D_C"], paper(X)


@pytest.mark.parametrize("form", ["plain", "module", "checkpoint", "legacy", "cuda"])
def test_paper_checkpoint_forms(form, tmp_path, paper_cakes):
    paper, splits, ref = paper_cakes
    path = tmp_path / "ckpt.pth.tar"
    save_like_the_paper(paper, path, form)
    model, config = cakes.load_paper_checkpoint(str(path))
    assert config.network == "i3d_resnet50" and len(config.blocks) == 16
    expected = [cakes.Config([(k, s[k]) for k in ORDER if s.get(k, 0) > 0]) for s in splits]
    assert config.blocks == expected
    with torch.no_grad():
        y = model(X)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("code", ["conv3d", "conv2d", "convp3d"])
def test_paper_plain_operations(code, tmp_path):
    torch.manual_seed(7)
    paper = randomise(PaperNet(code))
    path = tmp_path / "ckpt.pth.tar"
    save_like_the_paper(paper, path, "checkpoint")
    model, config = cakes.load_paper_checkpoint(str(path))
    assert config.op == {"convp3d": "p3d"}.get(code, code)
    with torch.no_grad():
        y, ref = model(X), paper(X)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("code", ["c_search", "p_search"])
def test_paper_search_supernetworks_are_derived(code, tmp_path):
    torch.manual_seed(8)
    paper = randomise(PaperNet(code))
    path = tmp_path / "search.pth.tar"
    save_like_the_paper(paper, path, "module")
    model, config = cakes.load_paper_checkpoint(str(path))
    # As ours derives: per layer the C_out channels of largest |gamma|.
    convts = [m for m in paper.modules() if isinstance(m, ConvT)]
    for block, t in zip(config.blocks, convts):
        gamma = (t.norm if code == "p_search" else t.out[0]).weight.detach().abs()
        c = gamma.numel() // 3
        kept = gamma.argsort(descending=True)[:c].sort().values
        t.kept = kept
        assert [n for _, n in block.groups] == [int(((kept // c) == i).sum()) for i in range(3)]
    with torch.no_grad():
        y, ref = model(X), paper(X)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_not_a_paper_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(cakes.ConfigError, match="not a checkpoint of the paper's code"):
        cakes.load_paper_checkpoint(str(tmp_path / "x.pt"))
    with pytest.raises(cakes.ConfigError, match="no such file"):
        cakes.load_paper_checkpoint(str(tmp_path / "missing.pt"))
