"""The op with the rest of PyTorch: the device-generic path against the fused
CPU kernel, Meta shapes, autocast, channels_last_3d, double backward, ONNX
export, TorchScript."""
import io
import os
import random
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cakes
from cakes import _ops

SHAPES = [(3, 3, 3), (1, 3, 3), (3, 1, 3), (3, 3, 1), (3, 1, 1), (1, 3, 1), (1, 1, 3), (1, 1, 1)]


def reference(x, weights, stride, dilation):
    outs = [F.conv3d(x, w, None, stride, [dilation[a] * (w.shape[2 + a] - 1) // 2 for a in range(3)], dilation)
            for w in weights if w.shape[0]]
    return torch.cat(outs, 1)


def random_case(rng, dtype=torch.float64):
    shapes = list(dict.fromkeys([rng.choice(SHAPES) for _ in range(rng.randint(1, 3))]))
    channels = [rng.randint(0, 4) for _ in shapes]
    channels[0] = max(channels[0], 1)
    n, c_in = rng.choice([1, 2, 3]), rng.randint(1, 4)
    size = [rng.randint(1, 6) for _ in range(3)]
    stride = [rng.choice([1, 2]) for _ in range(3)]
    dilation = [rng.choice([1, 1, 2]) for _ in range(3)]
    x = torch.randn(n, c_in, *size, dtype=dtype)
    ws = [torch.randn(c, c_in, *s, dtype=dtype) for s, c in zip(shapes, channels)]
    return x, ws, stride, dilation


def test_generic_path_equals_fused_kernel_values_and_gradients():
    rng = random.Random(0)
    torch.manual_seed(0)
    for case in range(30):
        x, ws, stride, dilation = random_case(rng)
        if case % 3 == 0:
            x = x.transpose(2, 4).contiguous().transpose(2, 4)  # non-contiguous
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        wss = [[w.clone().requires_grad_(True) for w in ws] for _ in range(2)]
        fused = _ops.shrunk_conv3d(xs[0], wss[0], stride, dilation)
        generic = _ops.shrunk_conv3d_generic(xs[1], wss[1], stride, dilation)
        torch.testing.assert_close(generic, fused, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(generic, reference(x, ws, stride, dilation), rtol=1e-10, atol=1e-10)
        g = torch.randn_like(fused)
        fused.backward(g)
        generic.backward(g)
        torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-10, atol=1e-10)
        for a, b in zip(wss[1], wss[0]):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10)


def test_generic_path_gradcheck_and_float32_training_step():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    a = torch.randn(2, 3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a, b: _ops.shrunk_conv3d_generic(x, [a, b], [1, 2, 2]), (x, a, b))
    # float32: the same step through both paths moves the weights the same way.
    x = torch.randn(2, 4, 4, 8, 8)
    ws = [torch.randn(3, 4, 3, 3, 3) * 0.1, torch.randn(5, 4, 3, 1, 1) * 0.1]
    after = []
    for fn in (_ops.shrunk_conv3d, _ops.shrunk_conv3d_generic):
        p = [torch.nn.Parameter(w.clone()) for w in ws]
        opt = torch.optim.SGD(p, lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            fn(x, p).square().mean().backward()
            opt.step()
        after.append(p)
    for a, b in zip(*after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_meta_shapes_match_real_outputs():
    rng = random.Random(2)
    for _ in range(20):
        x, ws, stride, dilation = random_case(rng, torch.float32)
        real = _ops.shrunk_conv3d(x, ws, stride, dilation)
        meta = _ops.shrunk_conv3d(x.to("meta"), [w.to("meta") for w in ws], stride, dilation)
        assert meta.device.type == "meta"
        assert meta.shape == real.shape and meta.dtype == real.dtype
    # Bad arguments are refused on Meta as on CPU.
    with pytest.raises(RuntimeError, match="input channels|C_in = 4"):
        _ops.shrunk_conv3d(torch.empty(1, 4, 5, 5, 5, device="meta"), [torch.empty(2, 3, 3, 3, 3, device="meta")])
    # Backward shapes.
    x = torch.empty(2, 4, 5, 6, 7, device="meta", requires_grad=True)
    w = torch.empty(3, 4, 1, 3, 3, device="meta", requires_grad=True)
    y = _ops.shrunk_conv3d(x, [w], [1, 2, 2])
    assert y.shape == (2, 3, 5, 3, 4)
    y.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


# CPU autocast takes bfloat16 only in this torch; float16 is checked on CUDA by
# tests/python/cuda_check.py.
@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_autocast_computes_in_float32_and_returns_the_input_dtype(dtype):
    torch.manual_seed(3)
    x = torch.randn(2, 4, 4, 6, 6)
    layer = cakes.nn.CakesConv3d(4, "3x3x3:3,1x3x3:2,3x1x1:3")
    expected = layer(x.to(dtype).float())  # the reduced-precision input, computed in float32
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x.to(dtype))
    assert y.dtype == dtype
    torch.testing.assert_close(y, expected.to(dtype))
    # float32 in, float32 out, unchanged by autocast.
    with torch.autocast("cpu", dtype=dtype):
        y32 = layer(x)
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32, layer(x))
    # Gradients flow back through the casts in the input's dtype.
    xr = x.to(dtype).requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        layer(xr).float().sum().backward()
    assert xr.grad.dtype == dtype and torch.isfinite(xr.grad.float()).all()
    # Without autocast a reduced-precision input is refused with a clear error.
    with pytest.raises(RuntimeError, match="float32 or float64"):
        layer(x.to(dtype))


def test_autocast_inside_a_network_with_conv3d():
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm3d(8),
                              torch.nn.ReLU(), cakes.nn.CakesBlock(8, "3x3x3:4,1x3x3:4")).eval()
    x = torch.randn(1, 3, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), net(x), rtol=0.05, atol=0.05)


def test_channels_last_3d_in_gives_channels_last_3d_out():
    torch.manual_seed(5)
    x = torch.randn(2, 4, 4, 6, 6)
    xc = x.contiguous(memory_format=torch.channels_last_3d)
    ws = [torch.randn(3, 4, 3, 3, 3), torch.randn(2, 4, 3, 1, 1)]
    for fn in (_ops.shrunk_conv3d, _ops.shrunk_conv3d_generic):
        y = fn(xc, ws, [1, 2, 2])
        assert y.is_contiguous(memory_format=torch.channels_last_3d) and not y.is_contiguous()
        torch.testing.assert_close(y, fn(x, ws, [1, 2, 2]))
        assert fn(x, ws).is_contiguous()
    meta = _ops.shrunk_conv3d(xc.to("meta"), [w.to("meta") for w in ws])
    assert meta.is_contiguous(memory_format=torch.channels_last_3d)


def test_double_backward_is_refused_clearly():
    x = torch.randn(1, 2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    for fn in (_ops.shrunk_conv3d, _ops.shrunk_conv3d_generic):
        (gx,) = torch.autograd.grad(fn(x, [w]).square().sum(), x, create_graph=True)
        # First derivatives with create_graph are still right.
        (ref,) = torch.autograd.grad(reference(x, [w], [1] * 3, [1] * 3).square().sum(), x)
        torch.testing.assert_close(gx, ref)
        with pytest.raises(RuntimeError, match="double backward .* is not supported"):
            gx.sum().backward()


class _Evaluator:
    """Evaluates the ONNX graphs the tests export (Conv, Concat, Relu,
    BatchNormalization, Identity) with torch, so that the decomposition is
    checked by running it, without an ONNX runtime."""

    def __init__(self, model):
        import onnx.numpy_helper as nh
        self.graph = model.graph
        self.values = {i.name: torch.from_numpy(nh.to_array(i).copy()) for i in self.graph.initializer}

    def run(self, inputs):
        import onnx.helper as oh
        v = dict(self.values)
        v.update(inputs)
        ops_seen = []
        for node in self.graph.node:
            a = {at.name: oh.get_attribute_value(at) for at in node.attribute}
            ins = [v[i] for i in node.input if i]
            ops_seen.append(node.op_type)
            if node.op_type == "Conv":
                pads = list(a.get("pads", [0] * 6))
                assert pads[:3] == pads[3:], "symmetric pads expected"
                out = F.conv3d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, list(a.get("strides", [1] * 3)),
                               pads[:3], list(a.get("dilations", [1] * 3)), a.get("group", 1))
            elif node.op_type == "Concat":
                out = torch.cat(ins, a["axis"])
            elif node.op_type == "Relu":
                out = torch.relu(ins[0])
            elif node.op_type == "BatchNormalization":
                out = F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, a.get("epsilon", 1e-5))
            elif node.op_type == "Identity":
                out = ins[0]
            else:
                raise AssertionError(f"unexpected ONNX node {node.op_type}")
            v[node.output[0]] = out
        return [v[o.name] for o in self.graph.output], ops_seen


def test_onnx_export_decomposes_into_conv_and_concat():
    import onnx
    torch.manual_seed(6)
    net = torch.nn.Sequential(cakes.nn.CakesConv3d(4, "3x3x3:3,1x3x3:0,3x1x1:2,1x1x1:1", stride=(1, 2, 2)),
                              torch.nn.ReLU(),
                              cakes.nn.CakesConv3d(6, "1x3x3:5", dilation=2)).eval()
    x = torch.randn(2, 4, 4, 8, 8)
    f = io.BytesIO()
    torch.onnx.export(net, (x,), f, input_names=["x"], output_names=["y"], opset_version=13)
    model = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(model)
    (y,), ops_seen = _Evaluator(model).run({"x": x})
    # Empty groups export nothing; one group is one Conv without a Concat.
    assert ops_seen.count("Conv") == 4 and ops_seen.count("Concat") == 1
    torch.testing.assert_close(y, net(x), rtol=1e-5, atol=1e-5)


def test_torchscript_script_save_load_in_a_fresh_process(tmp_path):
    torch.manual_seed(7)
    block = cakes.nn.CakesBlock(4, "3x3x3:2,1x3x3:2;output_index=3,0,2,1", stride=(1, 2, 2)).eval()
    layer = cakes.nn.CakesConv3d(4, "3x3x3:3,3x1x1:2")
    x = torch.randn(2, 4, 4, 8, 8)
    for i, m in enumerate((block, layer)):
        scripted = torch.jit.script(m)
        torch.testing.assert_close(scripted(x), m(x))
        path = tmp_path / f"m{i}.pt"
        scripted.save(str(path))
        torch.save(x, tmp_path / "x.pt")
        torch.save(m(x).detach(), tmp_path / f"y{i}.pt")
        # A new interpreter that loads only the op library, not the package.
        code = ("import sys, torch; torch.ops.load_library(sys.argv[1]); m = torch.jit.load(sys.argv[2]); "
                "x = torch.load(sys.argv[3]); y = torch.load(sys.argv[4]); "
                "assert torch.allclose(m(x), y, atol=1e-6), 'differs'; print('ok')")
        out = subprocess.run([sys.executable, "-c", code, _ops.load(), str(path), str(tmp_path / "x.pt"),
                              str(tmp_path / f"y{i}.pt")], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_trace_and_fx_keep_the_op():
    layer = cakes.nn.CakesConv3d(3, "3x3x3:2,1x3x3:2")
    x = torch.randn(1, 3, 4, 6, 6)
    traced = torch.jit.trace(layer, x)
    assert "cakes::shrunk_conv3d" in str(traced.graph)
    torch.testing.assert_close(traced(x), layer(x))
    gm = torch.fx.symbolic_trace(layer)
    torch.testing.assert_close(gm(x), layer(x))
