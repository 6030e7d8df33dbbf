"""Layers and cakes.convert: values against per-group convolutions, weights
carried over, selections, and what conversion does to a network."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cakes
from cakes.convert import shrink_kernel
from cakes.nn import AbsorbedNorm, CakesBlock, CakesConv3d, SuperConv3d


def per_group(x, weights, stride=(1, 1, 1), dilation=(1, 1, 1)):
    return torch.cat([F.conv3d(x, w, None, stride, [dilation[a] * (w.shape[2 + a] - 1) // 2 for a in range(3)],
                               dilation) for w in weights if w.shape[0]], 1)


def test_cakes_conv3d_is_the_groups_concatenated():
    torch.manual_seed(0)
    layer = CakesConv3d(4, "3x3x3:3,1x3x3:0,3x1x1:2", stride=(1, 2, 2), dilation=(2, 1, 1))
    assert [tuple(w.shape) for w in layer.weights] == [(3, 4, 3, 3, 3), (0, 4, 1, 3, 3), (2, 4, 3, 1, 1)]
    x = torch.randn(2, 4, 5, 9, 9)
    torch.testing.assert_close(layer(x), per_group(x, layer.weights, (1, 2, 2), (2, 1, 1)))
    with pytest.raises(cakes.ConfigError, match="listed twice"):
        CakesConv3d(4, "3x3x3:1,3x3x3:2")


def test_output_index_moves_or_sums_channels_after_the_norm():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 6, 6)
    perm = CakesBlock(3, "3x3x3:2,1x3x3:2;output_index=3,0,2,1", activation=None).eval()
    inner = perm.bn(perm.conv(x))
    torch.testing.assert_close(perm(x)[:, [3, 0, 2, 1]], inner)
    summed = CakesBlock(3, "3x3x3:2,1x3x3:2;output_index=0,1,0,1", activation=None).eval()
    inner = summed.bn(summed.conv(x))
    torch.testing.assert_close(summed(x), inner[:, :2] + inner[:, 2:])
    assert summed.out_channels == 2


def test_shrink_inverts_spec5_inflation():
    w2d = torch.randn(5, 4, 3, 3)
    w3d = cakes.weights.inflate_kernel(w2d, (3, 3, 3))
    torch.testing.assert_close(shrink_kernel(w3d, cakes.SubKernel(1, 3, 3))[:, :, 0], w2d)
    torch.testing.assert_close(shrink_kernel(w3d, cakes.SubKernel(3, 1, 1)),
                               cakes.weights.inflate_kernel(w2d, (3, 1, 1)))


class Net(nn.Module):
    """A residual block with a projection shortcut and a 1x1x1 tail."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, 3, (1, 2, 2), 1, bias=False)
        self.bn1 = nn.BatchNorm3d(8)
        self.conv2 = nn.Conv3d(8, 8, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(8)
        self.conv3 = nn.Conv3d(8, 6, 1, bias=False)
        self.stem = nn.Conv3d(3, 3, (1, 3, 3), padding=(0, 1, 1), bias=False)  # not cubic: kept
        self.skip = nn.Conv3d(3, 8, 1, (1, 2, 2), bias=False)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        s = self.stem(x)
        y = F.relu(self.bn1(self.conv1(s)))  # read by conv2 alone
        y = F.relu(self.bn2(self.conv2(y)) + self.skip(s))  # into a residual addition
        y = self.conv3(y)
        return self.head(y.mean((2, 3, 4)))


def test_convert_with_a_configuration_map_carries_the_weights():
    torch.manual_seed(2)
    net = Net().eval()
    ref = copy.deepcopy(net)
    x = torch.randn(2, 3, 4, 8, 8)
    # All 3x3x3 in a new order: the same function as the original network.
    report = cakes.convert(net, mode={"conv1": "3x3x3:8;output_index=7,6,5,4,3,2,1,0", "conv2": "3x3x3:8"})
    assert report.converted == ["conv1", "conv2"] and isinstance(net.conv1, CakesConv3d)
    torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-5)
    # A split: each group's channels are the conv's, kernels summed onto the sub-kernel.
    net2 = copy.deepcopy(ref)
    cakes.convert(net2, mode={"conv2": "1x3x3:5,3x1x1:3"})
    w = ref.conv2.weight
    torch.testing.assert_close(net2.conv2.weights[0], w[:5].sum(2, keepdim=True))
    torch.testing.assert_close(net2.conv2.weights[1], w[5:].sum((3, 4), keepdim=True))
    with pytest.raises(cakes.ConfigError, match="'conv2': configuration '1x3x3:5' has 5 output channels"):
        cakes.convert(copy.deepcopy(ref), mode={"conv2": "1x3x3:5"})
    with pytest.raises(cakes.ConfigError, match="'stem' cannot be converted: kernel 1x3x3"):
        cakes.convert(copy.deepcopy(ref), mode={"stem": "1x3x3:3"})
    with pytest.raises(cakes.ConfigError, match="1 block configurations given but the network has 2"):
        cakes.convert(copy.deepcopy(ref), mode=["3x3x3:8"])


def test_convert_super_finds_norms_readers_and_residuals():
    torch.manual_seed(3)
    net = Net()
    report = cakes.convert(net, "video_123d", "super")
    text = str(report)
    assert "stem" in text and "kept" in text
    assert isinstance(net.conv1, SuperConv3d) and not net.conv1.summed and net.conv1.reader == "conv2"
    assert isinstance(net.conv2, SuperConv3d) and net.conv2.summed  # feeds the residual addition
    assert isinstance(net.bn1, AbsorbedNorm) and net.conv1.absorbed == "bn1"
    assert net.conv2.in_channels == 24 and net.conv2.base_in_channels == 8
    assert net.conv1.bn.num_features == 24
    x = torch.randn(2, 3, 4, 8, 8)
    net(x).sum().backward()
    # A selection in eval mode equals the derived network.
    net.eval()
    derived = cakes.derive(net)
    config, model = derived
    assert [b.conv_channels for b in config.blocks] == [8, 8]
    cakes.search.select(net, derived.kept)
    torch.testing.assert_close(model.eval()(x), net(x), rtol=1e-5, atol=1e-6)
    cakes.search.clear_selection(net)


def test_untraceable_network_gets_summed_layers():
    class Dynamic(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(2, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm3d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
                return self.bn(self.conv(x))
            return self.bn(self.conv(-x))

    net = Dynamic()
    report = cakes.convert(net, "3x3x3,1x3x3", "super")
    assert not report.traced and "could not trace" in str(report)
    assert net.conv.summed and isinstance(net.bn, nn.BatchNorm3d)
    assert net(torch.randn(1, 2, 3, 4, 4)).shape == (1, 4, 3, 4, 4)


def test_torchvision_r3d_18_converts():
    import torchvision
    torch.manual_seed(4)
    net = torchvision.models.video.r3d_18(num_classes=3)
    report = cakes.convert(net, "video_123d", "super")
    # Its 16 Conv3DSimple 3x3x3 convolutions; the 3x7x7 stem and the 1x1x1
    # projections stay.
    assert len(report.converted) == 16 and "stem.0" not in report.converted
    layers = cakes.search.super_layers(net)
    assert sum(not l.summed for l in layers.values()) == 8
    x = torch.randn(1, 3, 4, 32, 32)
    assert net(x).shape == (1, 3)
    d = cakes.derive(net, target_macs=0.5, input_size=x.shape)
    assert cakes.macs(d.model, x.shape) == round(d.cost) <= 0.5 * d.reference
