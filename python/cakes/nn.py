"""Layers: the CAKES op as a module (CakesConv3d), with norm and activation
(CakesBlock), and the search super-layer (SuperConv3d, docs/CAKES.md §4).

Weights of a layer are a ParameterList `weights` in configuration order
(group i has shape (c_i, C_in, kd, kh, kw)). The modules are TorchScript-able
(CakesConv3d, CakesBlock) and export to ONNX through the op's symbolic.
"""
import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import _ops
from .config import Config, SubKernel, parse_candidates

__all__ = ["CakesConv3d", "CakesBlock", "SuperConv3d", "AbsorbedNorm", "OutputIndex"]


def _triple(v) -> List[int]:
    if isinstance(v, int):
        return [v, v, v]
    v = [int(a) for a in v]
    if len(v) != 3:
        raise ValueError(f"expected an int or 3 ints (D, H, W), got {v}")
    return v


def _init_weight(w: torch.Tensor) -> None:
    # nn.Conv3d's default initialisation, with the fan-in of the sub-kernel.
    if w.numel():
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))


class OutputIndex(nn.Module):
    """Sends channel i of its input to output channel index[i] (summing where
    several land on one output); a permutation is one gather."""

    def __init__(self, output_index: Sequence[int]):
        super().__init__()
        index = torch.tensor(list(output_index), dtype=torch.long)
        self.out_channels = int(index.max()) + 1 if index.numel() else 0
        self.is_permutation = index.numel() == self.out_channels and \
            bool((index.sort().values == torch.arange(index.numel())).all())
        self.register_buffer("index", index)
        gather = torch.empty_like(index)
        if self.is_permutation:
            gather[index] = torch.arange(index.numel())
        self.register_buffer("gather", gather)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.is_permutation:
            return y.index_select(1, self.gather)
        shape = list(y.shape)
        shape[1] = self.out_channels
        return y.new_zeros(shape).index_add(1, self.index, y)


class CakesConv3d(nn.Module):
    """The CAKES operation alone (docs/CAKES.md §2), used like nn.Conv3d:
    (N, in_channels, D, H, W) -> (N, config.out_channels, D', H', W') with
    "same" padding, D' = floor((D - 1) / stride) + 1 per axis, no bias.

    config: a Config or its text ("3x3x3:22,1x3x3:21,3x1x1:21" or JSON). An
    output_index in it is applied to the convolution's output here (a
    CakesBlock applies it after its norm, as C++ does).
    """

    def __init__(self, in_channels: int, config: Union[str, Config], stride=1, dilation=1):
        super().__init__()
        _ops.load()
        config = Config.parse(config)
        if in_channels < 1:
            raise ValueError(f"CakesConv3d: in_channels must be positive, got {in_channels}")
        self.in_channels = int(in_channels)
        self.config = config
        self.out_channels = config.out_channels
        self.stride = _triple(stride)
        self.dilation = _triple(dilation)
        if min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(f"CakesConv3d: stride and dilation must be positive, got {stride} and {dilation}")
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(c, in_channels, *k)) for k, c in config.groups])
        self.reorder = OutputIndex(config.output_index) if config.output_index else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for w in self.weights:
            _init_weight(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ws: List[torch.Tensor] = [w for w in self.weights]
        y = torch.ops.cakes.shrunk_conv3d(x, ws, self.stride, self.dilation)
        if self.reorder is not None:
            y = self.reorder(y)
        return y

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, '{self.config}'"
        if self.stride != [1, 1, 1]:
            s += f", stride={tuple(self.stride)}"
        if self.dilation != [1, 1, 1]:
            s += f", dilation={tuple(self.dilation)}"
        return s


class CakesBlock(nn.Module):
    """The CAKES layer with its norm and activation, as C++'s OpLayer: the
    convolution, one BatchNorm3d over all its channels, the configuration's
    output_index (if any), then the activation.

    norm: True (BatchNorm3d), False/None (none), or a callable channels -> module.
    activation: a module (default nn.ReLU(inplace=True)) or None.
    """

    def __init__(self, in_channels: int, config: Union[str, Config], stride=1, dilation=1,
                 norm=True, activation: Optional[nn.Module] = "relu"):
        super().__init__()
        config = Config.parse(config)
        self.config = config
        self.conv = CakesConv3d(in_channels, config.without_output_index(), stride, dilation)
        channels = config.conv_channels
        if norm is True:
            self.bn = nn.BatchNorm3d(channels)
        elif norm is False or norm is None:
            self.bn = nn.Identity()
        else:
            self.bn = norm(channels)
        self.reorder = OutputIndex(config.output_index) if config.output_index else None
        if activation == "relu":
            activation = nn.ReLU(inplace=True)
        self.act = activation if activation is not None else nn.Identity()
        self.in_channels = in_channels
        self.out_channels = config.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if self.reorder is not None:
            y = self.reorder(y)
        return self.act(y)


class AbsorbedNorm(nn.Identity):
    """Stands where a BatchNorm3d was before cakes.convert moved it into the
    layer `into` (a SuperConv3d or CakesBlock); `cakes.inflate` and
    `cakes.load_paper_checkpoint` follow it to find that norm."""

    def __init__(self, into: str):
        super().__init__()
        self.into = into

    def extra_repr(self) -> str:
        return f"into='{self.into}'"


class SuperConv3d(nn.Module):
    """The search super-layer (docs/CAKES.md §4): every candidate sub-kernel at full width
    out_channels, N * out_channels channels in candidate order (candidate n owns
    channels [n*C_out, (n+1)*C_out)), one BatchNorm3d over all of them (its |gamma|
    is the channels' importance).

    summed=False: outputs all N * C_out channels (its reader, the next
    convolution, reads them all). summed=True: the candidates' normalised
    outputs are added per output index j (channel n*C_out + j -> j), so the
    layer outputs C_out channels and can feed a residual addition.

    A selection (`select`, used by performance-priority search and to evaluate
    a derived sub-network) computes only the kept channels, with their rows of
    the weights and their BatchNorm entries (running statistics updated in
    place); dropped channels output zeros, so the reader sees the derived
    network's input.
    """

    def __init__(self, in_channels: int, out_channels: int, candidates="video_123d", stride=1, dilation=1,
                 summed: bool = False, base_in_channels: Optional[int] = None):
        super().__init__()
        _ops.load()
        self.candidates = parse_candidates(candidates)
        self.in_channels = int(in_channels)
        self.width = int(out_channels)
        # The derived layer's input width: in_channels unless this layer reads
        # another super-layer's N * C channels.
        self.base_in_channels = int(base_in_channels or in_channels)
        self.stride = _triple(stride)
        self.dilation = _triple(dilation)
        self.summed = bool(summed)
        self.out_channels = self.width if self.summed else self.width * len(self.candidates)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(self.width, self.in_channels, *k)) for k in self.candidates])
        self.bn = nn.BatchNorm3d(self.width * len(self.candidates))
        self.reader: Optional[str] = None  # module path of the reader, set by cakes.convert
        self.absorbed: Optional[str] = None  # module path of the norm it absorbed
        self.kept: Optional[torch.Tensor] = None
        self.sampler: Optional[torch.Generator] = None  # set by PerformancePriority
        for w in self.weights:
            _init_weight(w)

    @property
    def num_candidates(self) -> int:
        return len(self.candidates)

    # -- selections ----------------------------------------------------------
    def select(self, kept: Optional[Sequence[int]]) -> None:
        """Restricts the layer to the channels `kept` (global indices, any
        order), or restores the full layer with None. A summed layer needs
        exactly one channel per output index."""
        if kept is None:
            self.kept = None
            return
        k = torch.as_tensor(list(kept) if not torch.is_tensor(kept) else kept, dtype=torch.long).sort().values
        total = self.width * self.num_candidates
        if k.numel() and (int(k[0]) < 0 or int(k[-1]) >= total or bool((k[1:] == k[:-1]).any())):
            raise ValueError(f"SuperConv3d.select: indices must be distinct and in [0, {total})")
        if self.summed and not torch.equal((k % self.width).sort().values, torch.arange(self.width)):
            raise ValueError("SuperConv3d.select: a summed layer keeps exactly one candidate per output index")
        self.kept = k

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        """A performance-priority subset: a uniform C_out of the N * C_out
        channels, or for a summed layer one uniform candidate per output index."""
        n, c = self.num_candidates, self.width
        if self.summed:
            k = torch.randint(0, n, (c,), generator=generator) * c + torch.arange(c)
        else:
            k = torch.randperm(n * c, generator=generator)[:c]
        return k.sort().values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sampler is not None and self.training:
            self.kept = self.draw(self.sampler)
        n, c = self.num_candidates, self.width
        if self.kept is None:
            y = self.bn(_ops.shrunk_conv3d(x, list(self.weights), self.stride, self.dilation))
            if self.summed:
                return y.unflatten(1, (n, c)).sum(1)
            return y
        kept = self.kept.to(x.device)
        ws = [w.index_select(0, kept[(kept // c) == i] - i * c) for i, w in enumerate(self.weights)]
        y = _ops.shrunk_conv3d(x, ws, self.stride, self.dilation)
        y = self._selected_batch_norm(y, kept)
        shape = list(y.shape)
        shape[1] = c if self.summed else n * c
        return y.new_zeros(shape).index_copy(1, kept % c if self.summed else kept, y)

    def _selected_batch_norm(self, y: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        use_batch = bn.training or bn.running_mean is None
        mean = var = None
        if bn.running_mean is not None:
            mean, var = bn.running_mean[kept], bn.running_var[kept]
        momentum = bn.momentum if bn.momentum is not None else 0.0
        if bn.training and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked)
        out = F.batch_norm(y, mean, var, bn.weight[kept] if bn.weight is not None else None,
                           bn.bias[kept] if bn.bias is not None else None, use_batch, momentum, bn.eps)
        if bn.training and mean is not None:
            with torch.no_grad():
                bn.running_mean[kept] = mean
                bn.running_var[kept] = var
        return out

    def importance(self) -> torch.Tensor:
        """|gamma| of the BatchNorm, N * C_out values (candidate-major)."""
        return self.bn.weight.detach().abs()

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.width}, candidates='{','.join(str(k) for k in self.candidates)}'"
        if self.stride != [1, 1, 1]:
            s += f", stride={tuple(self.stride)}"
        if self.summed:
            s += ", summed=True"
        if self.reader:
            s += f", reader='{self.reader}'"
        return s
