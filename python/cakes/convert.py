"""cakes.convert: turn the k x k x k convolutions of any nn.Module into CAKES
layers (a configuration per layer) or search super-layers, carrying the
weights over.

A convolution qualifies when it is an nn.Conv3d with a cubic odd kernel k > 1,
groups=1, no bias, zero "same" padding (dilation * (k - 1) / 2 on every axis)
and any stride and dilation. Everything else is kept as it is.

The network's graph (torch.fx) tells, per converted convolution, whether a
BatchNorm3d follows it alone (it is then moved into the layer, as docs/CAKES.md §2/§4
put one norm over the layer's channels) and whether its output reaches only one
other convolution through activations that map 0 to 0 (its *reader*). A
super-layer with a reader outputs all N * C_out channels and the reader is
widened to read them (docs/CAKES.md §4); any other super-layer sums its candidates per
output index (docs/SEARCH.md), so the rest of the network is unchanged. A
network that torch.fx cannot trace gets summed super-layers and keeps its
norms where they are; the report says so.
"""
import operator
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config, ConfigError, NetworkConfig, SubKernel, parse_candidates
from .nn import AbsorbedNorm, CakesBlock, CakesConv3d, SuperConv3d

__all__ = ["convert", "ConversionReport", "shrink_kernel", "qualifies"]

# Elementwise modules and functions with f(0) = 0: a dropped channel (zero)
# stays zero through them, so the reader reading zeros equals the reader
# without the channel.
_ZERO_PRESERVING_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish,
                            nn.Dropout, nn.Dropout3d, nn.Identity, nn.Tanh, nn.Mish)
_ZERO_PRESERVING_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu, F.hardswish,
                              F.dropout, torch.tanh, F.mish, "relu", "relu_"}


def _plain_conv3d(m: nn.Module) -> bool:
    """An nn.Conv3d or a subclass that keeps its forward (torchvision's
    Conv3DSimple)."""
    return isinstance(m, nn.Conv3d) and type(m).forward is nn.Conv3d.forward


def qualifies(conv: nn.Module) -> Optional[str]:
    """None when `conv` can be converted, else the reason it cannot."""
    if not _plain_conv3d(conv):
        return f"a {type(conv).__name__} with a forward of its own"
    k = conv.kernel_size
    if not (k[0] == k[1] == k[2]) or k[0] % 2 == 0 or k[0] == 1:
        return f"kernel {k[0]}x{k[1]}x{k[2]} is not k x k x k with an odd k > 1"
    if conv.groups != 1:
        return f"groups={conv.groups}"
    if conv.bias is not None:
        return "has a bias"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode}"
    same = [d * (k[0] - 1) // 2 for d in conv.dilation]
    if isinstance(conv.padding, str):
        if conv.padding != "same":
            return f"padding='{conv.padding}'"
    elif list(conv.padding) != same:
        return f"padding {tuple(conv.padding)} is not 'same' ({tuple(same)})"
    return None


def shrink_kernel(w: torch.Tensor, kernel: SubKernel) -> torch.Tensor:
    """A (c, C_in, k, k, k) kernel carried onto `kernel`: summed over every axis
    where the sub-kernel has extent 1, centre-cropped where its extent is
    between 1 and k. This inverts docs/CAKES.md §5's inflation (repeat along an axis
    and divide by its extent): inflating a 2D kernel to 3x3x3 and shrinking it
    back to 1x3x3 gives the 2D kernel; each channel keeps its response to
    inputs that are constant along the dropped axes."""
    for axis, e in enumerate(kernel):
        a = 2 + axis
        k = w.shape[a]
        if e > k:
            raise ConfigError(f"sub-kernel {kernel} does not fit in a {k}-wide kernel")
        if e == 1:
            w = w.sum(a, keepdim=True)
        elif e < k:
            w = w.narrow(a, (k - e) // 2, e)
    return w.contiguous()


@dataclass
class Row:
    name: str
    before: str
    after: str
    note: str = ""


@dataclass
class ConversionReport:
    """What cakes.convert did: one row per nn.Conv3d (converted or kept, and
    why), the norms it moved into layers, and the readers it widened."""
    rows: List[Row] = field(default_factory=list)
    traced: bool = True
    trace_error: str = ""

    @property
    def converted(self) -> List[str]:
        return [r.name for r in self.rows if r.after != "kept"]

    def __str__(self) -> str:
        lines = []
        if not self.traced:
            lines.append(f"note: torch.fx could not trace the network ({self.trace_error}); "
                         "super-layers are summed and norms stay where they are")
        w = max([len(r.name) for r in self.rows] + [5])
        for r in self.rows:
            lines.append(f"{r.name:<{w}}  {r.before}  ->  {r.after}" + (f"  ({r.note})" if r.note else ""))
        lines.append(f"{len(self.converted)} of {len(self.rows)} convolutions converted")
        return "\n".join(lines)


def _describe(conv: nn.Conv3d) -> str:
    k = conv.kernel_size
    s = f"Conv3d {conv.in_channels}->{conv.out_channels} {k[0]}x{k[1]}x{k[2]}"
    if tuple(conv.stride) != (1, 1, 1):
        s += f" stride {tuple(conv.stride)}"
    return s


def _get(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name) if name else model


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(_get(model, parent), leaf, module)


@dataclass
class _Link:
    norm: Optional[str] = None    # BatchNorm3d that follows the conv alone
    reader: Optional[str] = None  # the only convolution its output reaches


def _analyse(model: nn.Module, names: Sequence[str]):
    """Per convolution name: its lone following BatchNorm3d and its reader."""
    import torch.fx

    class Tracer(torch.fx.Tracer):
        # Subclasses of the modules we look for (torchvision's Conv3DSimple)
        # are leaves too, so they appear as the modules they are.
        def is_leaf_module(self, m, qualname):
            return isinstance(m, (nn.Conv3d, nn.BatchNorm3d) + _ZERO_PRESERVING_MODULES) or \
                super().is_leaf_module(m, qualname)

    graph = Tracer().trace(model)
    modules = dict(model.named_modules())

    def module_of(node):
        return modules.get(node.target) if node.op == "call_module" else None

    def zero_preserving(node) -> bool:
        if node.op == "call_module":
            return isinstance(module_of(node), _ZERO_PRESERVING_MODULES)
        if node.op == "call_function":
            return node.target in _ZERO_PRESERVING_FUNCTIONS
        if node.op == "call_method":
            return node.target in _ZERO_PRESERVING_FUNCTIONS
        return False

    links: Dict[str, _Link] = {}
    by_target = {n.target: n for n in graph.nodes if n.op == "call_module"}
    for name in names:
        node = by_target.get(name)
        link = _Link()
        links[name] = link
        if node is None:
            continue
        users = list(node.users)
        if len(users) == 1 and isinstance(module_of(users[0]), nn.BatchNorm3d) \
                and module_of(users[0]).affine and len(users[0].all_input_nodes) == 1:
            bn_node = users[0]
            # A norm module called elsewhere too cannot move.
            if sum(1 for n in graph.nodes if n.op == "call_module" and n.target == bn_node.target) == 1:
                link.norm = bn_node.target
                node = bn_node
        if link.norm is None:
            continue  # without its norm a layer has no importance to read
        while True:
            users = list(node.users)
            if len(users) != 1:
                break
            u = users[0]
            if len(u.all_input_nodes) != 1:
                break
            m = module_of(u)
            if _plain_conv3d(m) and m.groups == 1:
                calls = sum(1 for n in graph.nodes if n.op == "call_module" and n.target == u.target)
                if calls == 1:
                    link.reader = u.target
                break
            if not zero_preserving(u):
                break
            node = u
    return links


def _norm_params(bn: nn.BatchNorm3d, repeat: int, target: nn.BatchNorm3d) -> None:
    with torch.no_grad():
        target.weight.copy_(bn.weight.repeat(repeat))
        target.bias.copy_(bn.bias.repeat(repeat))
        if bn.running_mean is not None and target.running_mean is not None:
            target.running_mean.copy_(bn.running_mean.repeat(repeat))
            target.running_var.copy_(bn.running_var.repeat(repeat))
            target.num_batches_tracked.copy_(bn.num_batches_tracked)
    target.eps, target.momentum = bn.eps, bn.momentum


def _widen_reader(reader: nn.Module, n: int) -> nn.Module:
    """The reader with its input weights repeated n times along its input
    channels (docs/CAKES.md §5)."""
    if isinstance(reader, SuperConv3d):
        with torch.no_grad():
            for i, w in enumerate(reader.weights):
                reader.weights[i] = nn.Parameter(w.repeat(1, n, 1, 1, 1))
        reader.in_channels *= n
        return reader
    wide = nn.Conv3d(reader.in_channels * n, reader.out_channels, reader.kernel_size, reader.stride,
                     reader.padding, reader.dilation, 1, reader.bias is not None, reader.padding_mode,
                     device=reader.weight.device, dtype=reader.weight.dtype)
    with torch.no_grad():
        wide.weight.copy_(reader.weight.repeat(1, n, 1, 1, 1))
        if reader.bias is not None:
            wide.bias.copy_(reader.bias)
    return wide


ConfigMap = Union[str, Config, NetworkConfig, Sequence, Dict[str, Union[str, Config]],
                  Callable[[str, nn.Conv3d], Union[str, Config, None]]]


def convert(model: nn.Module, candidates="video_123d", mode: ConfigMap = "super") -> ConversionReport:
    """Replaces, in place, each qualifying nn.Conv3d of `model` and returns a
    ConversionReport.

    mode="super": a SuperConv3d over `candidates` (a list of sub-kernels such
      as "3x3x3,1x3x3,3x1x1" or a named set: video_12d, video_23d, video_123d,
      volumetric_2d, volumetric_1d, volumetric_all); each candidate's kernel is
      the convolution's kernel shrunk onto it (shrink_kernel), the norm's
      parameters and the reader's input weights are repeated per candidate
      (docs/CAKES.md §5).
    mode="cakes": a CakesConv3d splitting each layer evenly over `candidates`.
    mode=a configuration map: {module path: Config or its text} (those
      convolutions only), a NetworkConfig or list (one block per qualifying
      convolution, in module order), a single Config for all, or a function
      (name, conv) -> Config or None. Output channel j of the convolution
      becomes the layer's channel j (or, with an output_index, the channel sent
      to output j), its kernel shrunk onto the group's sub-kernel.
    Raises ConfigError (one line naming the module) on a configuration whose
    width differs from the convolution's or a module that does not qualify.
    """
    cands = parse_candidates(candidates)
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv3d)]
    report = ConversionReport()
    eligible = [n for n, m in convs if qualifies(m) is None]

    # Which convolutions become what.
    plan: "OrderedDict[str, Optional[Config]]" = OrderedDict()
    if isinstance(mode, str) and mode == "super":
        for n in eligible:
            plan[n] = None
    elif isinstance(mode, str) and mode == "cakes":
        for n in eligible:
            plan[n] = Config.even_split(cands, _get(model, n).out_channels)
    elif isinstance(mode, dict):
        for n, c in mode.items():
            m = dict(convs).get(n)
            if m is None:
                raise ConfigError(f"convert: no nn.Conv3d named '{n}'")
            why = qualifies(m)
            if why is not None:
                raise ConfigError(f"convert: '{n}' cannot be converted: {why}")
            plan[n] = Config.parse(c)
    elif callable(mode) and not isinstance(mode, (str, Config)):
        for n in eligible:
            c = mode(n, _get(model, n))
            if c is not None:
                plan[n] = Config.parse(c)
    else:
        if isinstance(mode, (str, Config)):
            blocks = [Config.parse(mode)] * len(eligible)
        else:
            blocks = mode.blocks if isinstance(mode, NetworkConfig) else [Config.parse(b) for b in mode]
            if isinstance(mode, NetworkConfig) and mode.positions is not None:
                return convert(model, cands, mode.as_map())
        if len(blocks) != len(eligible):
            raise ConfigError(f"convert: {len(blocks)} block configurations given but the network has "
                              f"{len(eligible)} convertible convolutions ({', '.join(eligible)})")
        plan = OrderedDict(zip(eligible, blocks))
    for n, c in plan.items():
        conv = _get(model, n)
        if c is not None and c.out_channels != conv.out_channels:
            raise ConfigError(f"convert: '{n}': configuration '{c}' has {c.out_channels} output channels, "
                              f"the convolution has {conv.out_channels}")
        if c is not None:
            for k in c.kernels:
                if max(k) > conv.kernel_size[0]:
                    raise ConfigError(f"convert: '{n}': sub-kernel {k} does not fit in its "
                                      f"{conv.kernel_size[0]}-wide kernel")
        if c is None:
            for k in cands:
                if max(k) > conv.kernel_size[0]:
                    raise ConfigError(f"convert: '{n}': candidate {k} does not fit in its "
                                      f"{conv.kernel_size[0]}-wide kernel")

    super_mode = isinstance(mode, str) and mode == "super"
    links: Dict[str, _Link] = {n: _Link() for n in plan}
    if super_mode:
        try:
            links = _analyse(model, list(plan))
        except Exception as e:  # noqa: BLE001 - any tracing failure falls back
            report.traced = False
            report.trace_error = str(e).splitlines()[0] if str(e) else type(e).__name__

    notes: Dict[str, str] = {}
    new: Dict[str, nn.Module] = {}
    for n, c in plan.items():
        conv = _get(model, n)
        w = conv.weight.detach()
        if c is None:
            link = links[n]
            layer = SuperConv3d(conv.in_channels, conv.out_channels, cands, conv.stride, conv.dilation,
                                summed=link.reader is None).to(w.device, w.dtype)
            with torch.no_grad():
                for i, k in enumerate(cands):
                    layer.weights[i].copy_(shrink_kernel(w, k))
            if link.norm is not None:
                _norm_params(_get(model, link.norm), len(cands), layer.bn)
                layer.absorbed = link.norm
            layer.reader = link.reader
            what = "summed" if layer.summed else f"reader {link.reader}"
            notes[n] = what + (f", absorbs {link.norm}" if link.norm else ", own BatchNorm3d (no norm follows)")
        else:
            layer = CakesConv3d(conv.in_channels, c, conv.stride, conv.dilation).to(w.device, w.dtype)
            order = list(c.output_index) if c.output_index else list(range(c.conv_channels))
            with torch.no_grad():
                start = 0
                for i, (k, ch) in enumerate(c.groups):
                    rows = torch.tensor(order[start:start + ch], dtype=torch.long, device=w.device)
                    layer.weights[i].copy_(shrink_kernel(w.index_select(0, rows), k))
                    start += ch
            notes[n] = ""
        new[n] = layer
        report.rows.append(Row(n, _describe(conv), _describe_layer(layer), notes[n]))

    for n, m in convs:
        if n not in plan:
            why = qualifies(m)
            report.rows.append(Row(n, _describe(m), "kept", why or "not in the configuration map"))
    order = {n: i for i, (n, _) in enumerate(convs)}
    report.rows.sort(key=lambda r: order[r.name])

    # Widen readers first (a reader may itself be a new super-layer).
    for n, layer in new.items():
        if isinstance(layer, SuperConv3d) and layer.reader:
            r = layer.reader
            if r in new:
                new[r] = _widen_reader(new[r], layer.num_candidates)
                if isinstance(new[r], SuperConv3d):
                    new[r].base_in_channels = layer.width
            else:
                _set(model, r, _widen_reader(_get(model, r), layer.num_candidates))
                for row in report.rows:
                    if row.name == r:
                        row.after = f"Conv3d reading {layer.num_candidates} x {layer.width} channels"
                        row.note = f"reader of {n}"
    for n, layer in new.items():
        _set(model, n, layer)
        if isinstance(layer, SuperConv3d) and layer.absorbed:
            _set(model, layer.absorbed, AbsorbedNorm(n))
    return report


def _describe_layer(layer: nn.Module) -> str:
    if isinstance(layer, SuperConv3d):
        return f"SuperConv3d {len(layer.candidates)} x {layer.width} ({','.join(str(k) for k in layer.candidates)})"
    if isinstance(layer, CakesConv3d):
        return f"CakesConv3d '{layer.config}'"
    return type(layer).__name__
