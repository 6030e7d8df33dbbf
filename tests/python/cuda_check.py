"""The device-generic path on a CUDA machine, with whatever torch is installed
there (it need not be the 1.13 build the rest of the project uses):

    python3 tests/python/cuda_check.py            # from the repository root

Builds the op library from src/ops with torch.utils.cpp_extension (without
the fused CPU kernels when oneDNN's headers are missing, as on a pip-installed
torch; CPU then runs the generic path too), then checks on the GPU:
values and gradients against F.conv3d + torch.cat for random shapes, strides,
dilations and empty groups; float64 gradcheck; autocast (float16 and
bfloat16 in, the same dtype out, computed in float32); channels_last_3d;
cakes.nn layers and a super-network with a P and a C search step; and a few
training steps of a small network that match the same steps on CPU. Prints
one line per check and exits non-zero on the first failure.
"""
import glob
import os
import random
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build() -> str:
    from torch.utils.cpp_extension import load
    sources = sorted(glob.glob(os.path.join(ROOT, "src", "ops", "**", "*.cpp"), recursive=True))
    have_dnnl = os.path.exists("/usr/include/oneapi/dnnl/dnnl.h")
    if not have_dnnl:
        sources = [s for s in sources if os.sep + "cpu" + os.sep not in s]
    t = time.time()
    path = load("cakes_ops_check", sources, extra_include_paths=[os.path.join(ROOT, "include")],
                extra_cflags=["-O2"], extra_ldflags=["-ldnnl"] if have_dnnl else [],
                build_directory=tempfile.mkdtemp(), is_python_module=False, verbose=False)
    path = path if isinstance(path, str) else glob.glob(os.path.join(os.path.dirname(path), "*.so"))[0]
    print(f"built the op library ({len(sources)} sources, CPU kernels {'in' if have_dnnl else 'left out'}) "
          f"in {time.time() - t:.0f} s: {path}", flush=True)
    return path


def check(name, ok, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail else ""), flush=True)
    if not ok:
        sys.exit(1)


def reference(x, ws, stride, dilation):
    return torch.cat([F.conv3d(x, w, None, stride, [dilation[a] * (w.shape[2 + a] - 1) // 2 for a in range(3)],
                               dilation) for w in ws if w.shape[0]], 1)


def main():
    assert torch.cuda.is_available(), "no CUDA device"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    lib = build()
    os.environ["CAKES_OPS_LIBRARY"] = lib
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import cakes
    from cakes import _ops
    dev = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    shapes = [(3, 3, 3), (1, 3, 3), (3, 1, 3), (3, 3, 1), (3, 1, 1), (1, 3, 1), (1, 1, 3), (1, 1, 1)]
    rng = random.Random(0)
    worst = 0.0
    for case in range(40):
        ks = list(dict.fromkeys(rng.choice(shapes) for _ in range(rng.randint(1, 3))))
        cs = [rng.randint(0, 5) for _ in ks]
        cs[0] = max(cs[0], 1)
        n, cin = rng.randint(1, 3), rng.randint(1, 6)
        size = [rng.randint(1, 9) for _ in range(3)]
        stride = [rng.choice([1, 2]) for _ in range(3)]
        dilation = [rng.choice([1, 1, 2]) for _ in range(3)]
        dtype = torch.float64 if case % 2 else torch.float32
        x = torch.randn(n, cin, *size, device=dev, dtype=dtype, requires_grad=True)
        ws = [torch.randn(c, cin, *k, device=dev, dtype=dtype, requires_grad=True) for k, c in zip(ks, cs)]
        y = _ops.shrunk_conv3d(x, ws, stride, dilation)
        x2 = x.detach().clone().requires_grad_(True)
        ws2 = [w.detach().clone().requires_grad_(True) for w in ws]
        y2 = reference(x2, ws2, stride, dilation)
        g = torch.randn_like(y2)
        y.backward(g)
        y2.backward(g)
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        pairs = [(y, y2), (x.grad, x2.grad)] + [(a.grad, b.grad) for a, b in zip(ws, ws2) if a.shape[0]]
        for a, b in pairs:
            err = float((a - b).abs().max() / (b.abs().max() + 1e-12)) if b.numel() else 0.0
            worst = max(worst, err) if dtype == torch.float32 else worst
            if err > tol:
                check(f"case {case} {ks} {cs} stride {stride} dilation {dilation} {dtype}", False, f"rel err {err:.2e}")
        assert y.device.type == "cuda"
    check("values and gradients vs F.conv3d + cat, 40 random cases", True, f"worst float32 rel err {worst:.1e}")

    x = torch.randn(1, 2, 3, 4, 4, device=dev, dtype=torch.float64, requires_grad=True)
    a = torch.randn(2, 2, 3, 3, 3, device=dev, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 2, 3, 1, 1, device=dev, dtype=torch.float64, requires_grad=True)
    check("float64 gradcheck", torch.autograd.gradcheck(lambda x, a, b: _ops.shrunk_conv3d(x, [a, b], [1, 2, 1]),
                                                        (x, a, b)))

    layer = cakes.nn.CakesConv3d(4, "3x3x3:3,1x3x3:2,3x1x1:3").to(dev)
    x = torch.randn(2, 4, 4, 8, 8, device=dev)
    for dtype in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dtype):
            y = layer(x.to(dtype))
        ref = layer(x.to(dtype).float())
        check(f"autocast {dtype}", y.dtype == dtype and torch.allclose(y.float(), ref, rtol=1e-2, atol=1e-2),
              f"out {y.dtype}")

    xc = x.contiguous(memory_format=torch.channels_last_3d)
    y = layer(xc)
    check("channels_last_3d in, channels_last_3d out",
          y.is_contiguous(memory_format=torch.channels_last_3d) and torch.allclose(y, layer(x), atol=1e-5))

    meta = _ops.shrunk_conv3d(x.to("meta"), [w.to("meta") for w in layer.weights])
    check("meta shapes", meta.shape == layer(x).shape)

    # A small network: the same steps on CUDA and on CPU.
    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(cakes.nn.CakesBlock(3, "3x3x3:4,1x3x3:4,3x1x1:4", stride=(1, 2, 2)),
                                   cakes.nn.CakesBlock(12, "1x3x3:6,3x1x1:6;output_index=" +
                                                       ",".join(str(i) for i in [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 10, 11])),
                                   torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(12, 3))
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(4, 3, 4, 16, 16, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(5)]
    losses = {}
    finals = {}
    for device in ("cpu", "cuda"):
        m = net().to(device)
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        ls = []
        for xb, yb in data:
            loss = F.cross_entropy(m(xb.to(device)), yb.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            ls.append(float(loss))
        losses[device] = ls
        finals[device] = [p.detach().cpu() for p in m.parameters()]
    same = all(torch.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in zip(finals["cpu"], finals["cuda"]))
    check("5 training steps on CUDA match CPU", same, f"losses cuda {[round(v, 4) for v in losses['cuda']]}, "
          f"cpu {[round(v, 4) for v in losses['cpu']]}")

    # Search on the GPU: a super-network, one C and one P step, derive.
    torch.manual_seed(2)
    sup = torch.nn.Sequential(torch.nn.Conv3d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm3d(8),
                              torch.nn.ReLU(), torch.nn.Conv3d(8, 8, 3, padding=1, bias=False),
                              torch.nn.BatchNorm3d(8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool3d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 3))
    cakes.convert(sup, "video_123d", "super")
    sup = sup.to(dev)
    opt = torch.optim.SGD(sup.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    xb, yb = data[0][0].to(dev), data[0][1].to(dev)
    F.cross_entropy(sup(xb), yb).backward()
    cakes.search.CostPriority(sup, s=1e-3).apply()
    opt.step()
    perf = cakes.search.PerformancePriority(sup)
    opt.zero_grad()
    F.cross_entropy(sup(xb), yb).backward()
    perf.step(opt)
    perf.stop()
    d = cakes.derive(sup)
    sup.eval()
    cakes.search.select(sup, d.kept)
    with torch.no_grad():
        same = torch.allclose(d.model.eval()(xb), sup(xb), rtol=1e-4, atol=1e-5)
    check("super-network C and P steps and derivation on CUDA", same, str(d.config.blocks))
    print("all CUDA checks passed", flush=True)


if __name__ == "__main__":
    main()
