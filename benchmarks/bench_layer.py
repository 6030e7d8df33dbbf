"""The layer benchmark from Python: torch.ops.cakes.shrunk_conv3d against
per-group F.conv3d + torch.cat and a full 3x3x3 F.conv3d, timed interleaved
in one run (warm-up, medians), forward and forward+backward.

    /usr/bin/python3 benchmarks/bench_layer.py build/libcakes.so \
        --split 3x3x3:22,1x3x3:21,3x1x1:21 --input 1x8x56x56 --threads 2
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def parse_split(text):
    groups = []
    for item in text.split(","):
        shape, channels = item.split(":")
        groups.append((tuple(int(v) for v in shape.split("x")), int(channels)))
    return groups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("--split", default="3x3x3:22,1x3x3:21,3x1x1:21")
    ap.add_argument("--input", default="1x8x56x56", help="NxDxHxW")
    ap.add_argument("--in-channels", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    torch.ops.load_library(args.lib)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, d, h, w = (int(v) for v in args.input.split("x"))
    c_in = args.in_channels
    groups = parse_split(args.split)
    c_out = sum(c for _, c in groups)
    x = torch.randn(n, c_in, d, h, w)
    ws = [torch.randn(c, c_in, *k) * 0.05 for k, c in groups]
    full = [torch.randn(c_out, c_in, 3, 3, 3) * 0.05]
    positions = n * d * h * w
    macs = positions * c_in * sum(c * k[0] * k[1] * k[2] for k, c in groups)
    full_macs = positions * c_in * c_out * 27

    def fused(x, ws):
        return torch.ops.cakes.shrunk_conv3d(x, ws, [1, 1, 1], [1, 1, 1])

    def per_group(x, ws):
        return torch.cat([F.conv3d(x, w_, padding=tuple(s // 2 for s in w_.shape[2:]))
                          for w_ in ws if w_.shape[0]], 1)

    def conv3d(x, ws):
        return F.conv3d(x, ws[0], padding=1)

    cands = [("cakes fused (torch.ops)", fused, ws, macs),
             ("per-group F.conv3d + cat", per_group, ws, macs),
             ("full 3x3x3 F.conv3d", conv3d, full, full_macs)]

    def fwd(fn, weights):
        def run():
            with torch.no_grad():
                fn(x, weights)
        return run

    def fwdbwd(fn, weights):
        xg = x.clone().requires_grad_(True)
        wg = [t.clone().requires_grad_(True) for t in weights]

        def run():
            y = fn(xg, wg)
            y.backward(torch.ones_like(y))
            xg.grad = None
            for t in wg:
                t.grad = None
        return run

    def interleaved(runs):
        for _ in range(args.warmup):
            for r in runs:
                r()
        samples = [[] for _ in runs]
        for _ in range(args.repeats):
            for i, r in enumerate(runs):
                t0 = time.perf_counter()
                r()
                samples[i].append((time.perf_counter() - t0) * 1e3)
        return [statistics.median(s) for s in samples]

    tf = interleaved([fwd(fn, wt) for _, fn, wt, _ in cands])
    tb = interleaved([fwdbwd(fn, wt) for _, fn, wt, _ in cands])
    print(f"python bench layer: {c_in}->{c_out}, input {args.input}, split {args.split}, "
          f"{torch.get_num_threads()} threads, ideal speed-up {full_macs / macs:.2f}x")
    print(f"{'variant':<28} {'fwd ms':>9} {'vs 3D':>7} {'fwd+bwd ms':>11} {'vs 3D':>7}")
    for (name, _, _, _), f, b in zip(cands, tf, tb):
        print(f"{name:<28} {f:9.3f} {tf[2] / f:6.2f}x {b:11.3f} {tb[2] / b:6.2f}x")
    print(f"fused vs per-group+cat: {tf[1] / tf[0]:.2f}x forward, {tb[1] / tb[0]:.2f}x forward+backward")


if __name__ == "__main__":
    main()
