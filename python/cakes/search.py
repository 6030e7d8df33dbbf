"""Search from Python (docs/CAKES.md §4, docs/SEARCH.md): the cost-priority L1
sub-gradient, performance-priority channel subsets that leave dropped channels
still, derivation of a configuration (per layer, or under a MACs or latency
budget) and the derived network with inherited weights.

The derivation mirrors C++'s cakes::search::derive step for step (the same
ranking, ties, cost model, Lagrangian bisection and arithmetic order), so the
same super-network weights give the same configuration as `cakes derive`;
tests/python/test_search.py checks that on a C++ search checkpoint.
"""
import copy
import math
import statistics
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .config import Config, ConfigError, NetworkConfig
from .cost import layer_macs
from .nn import CakesBlock, CakesConv3d, SuperConv3d

__all__ = ["CostPriority", "PerformancePriority", "derive", "Derivation", "super_layers", "select",
           "clear_selection", "l1_weights", "mac_cost_model", "CostModel", "profile"]


def super_layers(model: nn.Module) -> "OrderedDict[str, SuperConv3d]":
    """The searched layers of a super-network, in module order."""
    layers = OrderedDict((n, m) for n, m in model.named_modules() if isinstance(m, SuperConv3d))
    if not layers:
        raise ValueError("the model has no SuperConv3d layer (make one with cakes.convert(model, mode='super'))")
    return layers


def l1_weights(candidates, reweight: bool) -> List[float]:
    """w_op per candidate: its kernel volume over the set's total (27:9:3 ->
    9/13, 3/13, 1/13), or 1 without re-weighting."""
    total = float(sum(k.volume for k in candidates))
    return [k.volume / total if reweight else 1.0 for k in candidates]


class CostPriority:
    """Cost-priority search ("C"): after loss.backward(), `apply()` adds
    s * w_op * sign(gamma) to the gradient of every searched BatchNorm scale."""

    def __init__(self, model: nn.Module, s: float = 1e-4, reweight: bool = True):
        self.layers = list(super_layers(model).values())
        self.s = float(s)
        self.reweight = reweight

    @torch.no_grad()
    def apply(self) -> None:
        for layer in self.layers:
            gamma = layer.bn.weight
            if gamma.grad is None:
                gamma.grad = torch.zeros_like(gamma)
            w = l1_weights(layer.candidates, self.reweight)
            coef = torch.cat([torch.full((layer.width,), self.s * wn, dtype=gamma.dtype, device=gamma.device)
                              for wn in w])
            gamma.grad.add_(coef * gamma.sign())

    __call__ = apply


def _reader_weights(model: nn.Module, layer: SuperConv3d) -> List[torch.Tensor]:
    if not layer.reader:
        return []
    r = model.get_submodule(layer.reader)
    if isinstance(r, SuperConv3d):
        return list(r.weights)
    if isinstance(r, CakesConv3d):
        return list(r.weights)
    return [r.weight]


class PerformancePriority:
    """Performance-priority search ("P"): every training forward of a searched
    layer draws a uniformly random subset of exactly C_out of its N * C_out
    channels (a summed layer: one random candidate per output index), computes
    only those, and outputs zeros for the rest. `step(optimizer)` runs
    optimizer.step() so that the dropped channels stay still: their weights,
    BatchNorm entries and reader columns, and their slices of the optimizer's
    state (momentum, Adam moments: any state tensor of the parameter's shape),
    so weight decay and momentum do not move them. One forward per step.
    `stop()` ends the sampling (layers compute all channels again)."""

    def __init__(self, model: nn.Module, seed: int = 0):
        self.model = model
        self.layers = super_layers(model)
        self.generator = torch.Generator().manual_seed(int(seed))
        for layer in self.layers.values():
            layer.sampler = self.generator

    def stop(self) -> None:
        for layer in self.layers.values():
            layer.sampler = None
            layer.select(None)

    def _slices(self):
        """(parameter, dim, dropped indices) for every dropped channel."""
        out = []
        for layer in self.layers.values():
            if layer.kept is None:
                continue
            total = layer.width * layer.num_candidates
            mask = torch.ones(total, dtype=torch.bool)
            mask[layer.kept.cpu()] = False
            dropped = mask.nonzero().flatten()
            if not dropped.numel():
                continue
            out.append((layer.bn.weight, 0, dropped))
            out.append((layer.bn.bias, 0, dropped))
            for i, w in enumerate(layer.weights):
                local = dropped[(dropped // layer.width) == i] - i * layer.width
                if local.numel():
                    out.append((w, 0, local))
            for w in _reader_weights(self.model, layer):
                out.append((w, 1, dropped))
        return out

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        saved = []
        with torch.no_grad():
            for p, dim, idx in self._slices():
                idx = idx.to(p.device)
                state = optimizer.state.get(p, {})
                tensors = {k: v.index_select(dim, idx) for k, v in state.items()
                           if torch.is_tensor(v) and v.shape == p.shape}
                saved.append((p, dim, idx, p.index_select(dim, idx), bool(state), tensors))
        optimizer.step()
        with torch.no_grad():
            for p, dim, idx, value, had_state, tensors in saved:
                p.index_copy_(dim, idx, value)
                for k, v in optimizer.state.get(p, {}).items():
                    if not (torch.is_tensor(v) and v.shape == p.shape):
                        continue
                    if had_state and k in tensors:
                        v.index_copy_(dim, idx, tensors[k])
                    else:  # created by this step: as the first selecting step would have
                        v.index_fill_(dim, idx, 0)


def select(model: nn.Module, kept: Dict[str, Sequence[int]]) -> None:
    """Restricts each searched layer to `kept[name]` (global channel indices);
    in eval mode the super-network then computes the derived network."""
    for name, layer in super_layers(model).items():
        layer.select(kept[name])


def clear_selection(model: nn.Module) -> None:
    for layer in super_layers(model).values():
        layer.select(None)


# -- cost models ---------------------------------------------------------------

@dataclass
class CostModel:
    """Per-channel cost of each candidate at each searched layer, plus the cost
    of everything the derivation does not change; C++'s search::CostModel."""
    unit: str
    cost: List[List[float]]
    fixed: float
    reference: float  # the all-kxkxk network in the same unit

    def total(self, counts: Sequence[Sequence[int]]) -> float:
        t = self.fixed
        for l, row in enumerate(counts):
            for n, c in enumerate(row):
                t += float(c) * self.cost[l][n]
        return t

    def minimum(self, widths: Sequence[int]) -> float:
        t = self.fixed
        for l, w in enumerate(widths):
            t += float(w) * min(self.cost[l])
        return t


def _input_size(input_size) -> List[int]:
    size = [int(s) for s in input_size]
    if len(size) != 5:
        raise ValueError(f"input_size must be (N, C, D, H, W), got {size}")
    return size


def mac_cost_model(model: nn.Module, input_size: Sequence[int]) -> CostModel:
    """MACs as `cakes info` counts them, for an input of `input_size`."""
    layers = super_layers(model)
    saved = {n: l.kept for n, l in layers.items()}
    clear_selection(model)
    shapes = {}  # output shapes at batch 1 (layer_macs runs batch 1)
    hooks = [l.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, tuple(o.shape)))
             for n, l in layers.items()]
    try:
        rows = layer_macs(model, _input_size(input_size))
    finally:
        for h in hooks:
            h.remove()
        for n, l in layers.items():
            l.kept = saved[n]
    batch = int(input_size[0])
    cost, searched, reference = [], 0.0, 0.0
    for n, l in layers.items():
        o = shapes[n]
        unit = float(batch * o[2] * o[3] * o[4]) * float(l.base_in_channels)
        cost.append([unit * float(k.volume) for k in l.candidates])
        searched += float(rows[n])
        full = max(max(k) for k in l.candidates)
        reference += unit * float(full ** 3) * float(l.width)
    readers_saved = 0.0
    for n, l in layers.items():
        if l.reader and l.reader not in layers:
            readers_saved += float(rows[l.reader]) * (1 - 1.0 / float(l.num_candidates))
    fixed = float(sum(rows.values())) - searched - readers_saved
    return CostModel("MACs", cost, fixed, fixed + reference)


def profile(model: nn.Module, input_size: Sequence[int], repeats: int = 5) -> dict:
    """A latency table (C++'s `cakes profile` layout): per searched layer and
    candidate, the median milliseconds of a forward pass of that layer with
    C_out channels of the candidate alone at the derived input width; the rest
    of the network (whole network at the cheapest candidate minus those
    layers); and the modelled all-kxkxk network."""
    layers = super_layers(model)
    size = _input_size(input_size)

    def median_ms(fn) -> float:
        fn()
        t = []
        for _ in range(max(1, repeats)):
            a = time.perf_counter()
            fn()
            t.append((time.perf_counter() - a) * 1e3)
        return statistics.median(t)

    inputs = {}
    hooks = [l.register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, (tuple(i[0].shape), tuple(o.shape))))
             for n, l in layers.items()]
    try:
        layer_macs(model, size)
    finally:
        for h in hooks:
            h.remove()
    table = {"network": type(model).__name__, "width": 0,
             "candidates": ",".join(str(k) for k in next(iter(layers.values())).candidates),
             "input_sizes": size, "threads": torch.get_num_threads(), "layers": [], "layer_ms": []}
    modelled_cheapest = modelled_full = 0.0
    with torch.no_grad():
        for n, l in layers.items():
            (_, _, *spatial_in), out = inputs[n]
            x = torch.randn(size[0], l.base_in_channels, *spatial_in)
            row = []
            for k in l.candidates:
                conv = CakesConv3d(l.base_in_channels, Config.uniform(k, l.width), l.stride, l.dilation).eval()
                row.append(median_ms(lambda: conv(x)))
            cheapest = min(range(len(l.candidates)), key=lambda i: l.candidates[i].volume)
            modelled_cheapest += row[cheapest]
            full = max(max(k) for k in l.candidates)
            conv = CakesConv3d(l.base_in_channels, Config.uniform((full, full, full), l.width), l.stride,
                               l.dilation).eval()
            modelled_full += median_ms(lambda: conv(x))
            table["layers"].append(n)
            table["layer_ms"].append(row)
        kept = {}
        for n, l in layers.items():
            cheapest = min(range(len(l.candidates)), key=lambda i: l.candidates[i].volume)
            kept[n] = list(range(cheapest * l.width, (cheapest + 1) * l.width)) if not l.summed else \
                [cheapest * l.width + j for j in range(l.width)]
        was_training = model.training
        model.eval()
        select(model, kept)
        try:
            x = torch.randn(*size)
            whole = median_ms(lambda: model(x))
        finally:
            clear_selection(model)
            model.train(was_training)
    table["rest_ms"] = max(0.0, whole - modelled_cheapest)
    table["reference_ms"] = table["rest_ms"] + modelled_full
    return table


def latency_cost_model(model: nn.Module, table: dict) -> CostModel:
    layers = super_layers(model)
    if list(table["layers"]) != list(layers):
        raise ConfigError("latency table: its layers " + ", ".join(table["layers"]) +
                          " are not this network's searched layers (profile this network)")
    cost = []
    for (n, l), ms in zip(layers.items(), table["layer_ms"]):
        if len(ms) != l.num_candidates:
            raise ConfigError(f"latency table: layer '{n}' has {len(ms)} candidates, expected {l.num_candidates}")
        cost.append([float(v) / float(l.width) for v in ms])
    return CostModel("ms", cost, float(table["rest_ms"]), float(table.get("reference_ms", 0.0)))


# -- derivation ----------------------------------------------------------------

@dataclass
class Derivation:
    """What cakes.derive returns; unpacks as (config, model)."""
    config: NetworkConfig
    model: nn.Module
    kept: "OrderedDict[str, List[int]]"
    counts: List[List[int]]
    cost: Optional[float] = None
    unit: str = ""
    reference: Optional[float] = None

    def __iter__(self) -> Iterator:
        yield self.config
        yield self.model


def _pick(layers, imp, cost, lam):
    kept, counts = [], []
    for l, layer in enumerate(layers):
        c, n = layer.width, layer.num_candidates
        total = n * c
        if len(imp[l]) != total:
            raise ValueError(f"derive: a layer has {len(imp[l])} importances, expected {total}")
        cl = cost[l]

        def key(i, l=l, c=c, cl=cl):
            # better(a, b): higher score, then cheaper, then lower index.
            return (-(imp[l][i] - lam * cl[i // c]), cl[i // c], i)

        if layer.summed:
            idx = []
            for j in range(c):
                best = j
                for m in range(1, n):
                    if key(m * c + j) < key(best):
                        best = m * c + j
                idx.append(best)
        else:
            idx = sorted(range(total), key=key)[:c]
        idx.sort()
        cnt = [0] * n
        for i in idx:
            cnt[i // c] += 1
        kept.append(idx)
        counts.append(cnt)
    return kept, counts


def _parse_target(target, reference: float) -> float:
    if isinstance(target, str):
        t = target.strip()
        scale = {"G": 1e9, "M": 1e6, "K": 1e3, "k": 1e3}.get(t[-1:], None)
        try:
            v = float(t[:-1] if scale else t)
        except ValueError:
            v = -1.0
        if v <= 0:
            raise ConfigError(f"bad target_macs '{target}' (expected a fraction of the 3D network such as 0.5, "
                              "or MACs such as 30G)")
        return v * scale if scale else (v * reference if v <= 1 else v)
    v = float(target)
    if v <= 0:
        raise ConfigError(f"bad target_macs {target}: must be positive")
    return v * reference if v <= 1 else v


def derive(model: nn.Module, target_macs=None, target_latency: Optional[float] = None,
           input_size: Optional[Sequence[int]] = None, latency_table: Optional[dict] = None,
           importance: Optional[Dict[str, Sequence[float]]] = None) -> Derivation:
    """Derives a configuration from a super-network and builds the derived
    network with the kept channels' weights (a deep copy; `model` is unchanged).

    Per searched layer the C_out channels with the largest |gamma| (a summed
    layer: per output index the candidate with the largest |gamma|); ties go to
    the cheaper candidate, then the lower index. With target_macs (a fraction
    of the all-kxkxk network such as 0.5, absolute MACs such as 3e9, or "30G";
    needs input_size (N, C, D, H, W)) or target_latency (ms; needs a
    latency_table from cakes.search.profile), channels are chosen across layers
    by importance per unit cost, never above the budget and as close to it as
    the choice allows (a budget above what importance alone picks is spent on
    costlier candidates); a budget below the all-cheapest-candidate cost
    raises ConfigError.

    Returns a Derivation: (config, model) when unpacked, plus the kept channels
    per layer, the counts and the cost.
    """
    layers = super_layers(model)
    names, mods = list(layers), list(layers.values())
    if importance is None:
        imp = [[float(v) for v in m.importance().double().cpu().tolist()] for m in mods]
    else:
        imp = [[float(v) for v in importance[n]] for n in names]
    if target_macs is not None and target_latency is not None:
        raise ConfigError("give target_macs or target_latency, not both")
    cm: Optional[CostModel] = None
    budget = None
    if target_latency is not None:
        if latency_table is None:
            raise ConfigError("target_latency needs a latency_table (cakes.search.profile)")
        cm = latency_cost_model(model, latency_table)
        budget = float(target_latency)
    elif input_size is not None or target_macs is not None:
        if input_size is None:
            raise ConfigError("target_macs needs input_size (N, C, D, H, W)")
        cm = mac_cost_model(model, input_size)
        if target_macs is not None:
            budget = _parse_target(target_macs, cm.reference)
    # Without a cost model, ties go by kernel volume (C++ derive_by_volume).
    cost = cm.cost if cm is not None else [[float(k.volume) for k in m.candidates] for m in mods]
    kept, counts = _pick(mods, imp, cost, 0.0)
    if budget is not None and cm.total(counts) != budget:
        lowest = cm.minimum([m.width for m in mods])
        if budget < lowest:
            raise ConfigError(f"budget {budget:g} {cm.unit} is infeasible: the cheapest derivation (every channel "
                              f"on the cheapest candidate) costs {lowest:g} {cm.unit}")
        max_cost = max(v for row in cm.cost for v in row)
        scaled = [[v / max_cost for v in row] for row in cm.cost]
        # As the C++ derive (search/derive.h): over budget the smallest
        # lambda > 0 that meets it; under it the most negative lambda that
        # still does, so that the budget is spent.
        over = cm.total(counts) > budget
        sign = 1.0 if over else -1.0
        lo, hi = 1e-9, 1e12
        k, c = _pick(mods, imp, scaled, sign * hi)
        if over:
            kept, counts = k, c
        elif cm.total(c) <= budget:
            kept, counts = k, c
            lo = hi
        for _ in range(100):
            if not lo < hi:
                break
            mid = math.sqrt(lo * hi)
            k, c = _pick(mods, imp, scaled, sign * mid)
            fits = cm.total(c) <= budget
            if fits == over:
                hi = mid
            else:
                lo = mid
            if fits and (over or cm.total(c) >= cm.total(counts)):
                kept, counts = k, c
    blocks = []
    for m, k, cnt in zip(mods, kept, counts):
        output_index = [i % m.width for i in k] if m.summed else []
        blocks.append(Config(list(zip(m.candidates, cnt)), output_index))
    config = NetworkConfig(blocks, names)
    derived = inherit(model, OrderedDict(zip(names, kept)), config)
    return Derivation(config, derived, OrderedDict(zip(names, kept)), counts,
                      cm.total(counts) if cm is not None else None, cm.unit if cm is not None else "",
                      cm.reference if cm is not None else None)


def inherit(model: nn.Module, kept: Dict[str, List[int]], config: NetworkConfig) -> nn.Module:
    """The derived network: a deep copy of `model` with each SuperConv3d
    replaced by a CakesBlock (its kept channels' filters, BatchNorm entries and
    statistics; no activation, the network's own follows) and each reader
    reading only the kept channels. In eval mode it computes what the
    super-network computes under select(model, kept)."""
    layers = super_layers(model)
    for name, layer in layers.items():
        layer.select(None)
    derived = copy.deepcopy(model)
    for layer in super_layers(derived).values():
        layer.sampler = None
    dl = super_layers(derived)
    with torch.no_grad():
        # Readers first: a reader may be a super-layer that is derived below.
        for name, layer in dl.items():
            if not layer.reader:
                continue
            idx = torch.tensor(kept[name], dtype=torch.long)
            r = derived.get_submodule(layer.reader)
            if isinstance(r, SuperConv3d):
                for i, w in enumerate(r.weights):
                    r.weights[i] = nn.Parameter(w.index_select(1, idx.to(w.device)))
                r.in_channels = len(kept[name])
            else:
                narrow = nn.Conv3d(len(kept[name]), r.out_channels, r.kernel_size, r.stride, r.padding,
                                   r.dilation, 1, r.bias is not None, r.padding_mode,
                                   device=r.weight.device, dtype=r.weight.dtype)
                narrow.weight.copy_(r.weight.index_select(1, idx.to(r.weight.device)))
                if r.bias is not None:
                    narrow.bias.copy_(r.bias)
                parent, _, leaf = layer.reader.rpartition(".")
                setattr(derived.get_submodule(parent) if parent else derived, leaf, narrow)
        for (name, layer), cfg in zip(dl.items(), config.blocks):
            idx = torch.tensor(kept[name], dtype=torch.long)
            w0 = layer.weights[0]
            block = CakesBlock(layer.in_channels, cfg, layer.stride, layer.dilation, norm=True,
                               activation=None).to(w0.device, w0.dtype)
            for i in range(layer.num_candidates):
                local = idx[(idx // layer.width) == i] - i * layer.width
                block.conv.weights[i].copy_(layer.weights[i].index_select(0, local.to(w0.device)))
            bn, src = block.bn, layer.bn
            i_dev = idx.to(src.weight.device)
            bn.weight.copy_(src.weight.index_select(0, i_dev))
            bn.bias.copy_(src.bias.index_select(0, i_dev))
            bn.running_mean.copy_(src.running_mean.index_select(0, i_dev))
            bn.running_var.copy_(src.running_var.index_select(0, i_dev))
            bn.num_batches_tracked.copy_(src.num_batches_tracked)
            bn.eps, bn.momentum = src.eps, src.momentum
            parent, _, leaf = name.rpartition(".")
            setattr(derived.get_submodule(parent) if parent else derived, leaf, block)
    return derived
