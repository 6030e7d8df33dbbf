"""The op as a drop-in from Python, at every convolution shape of I3D
ResNet-50 (8x224^2, batch 1): torch.ops.cakes.shrunk_conv3d against what it
replaces, per-group F.conv3d + torch.cat (one F.conv3d for a single group),
forward and forward+backward, timed interleaved (warm-up, medians). Every
call pays its fixed costs (argument checks, weight handling, scratch), as in
a PyTorch network.

    /usr/bin/python3 benchmarks/dropin_shapes.py build/libcakes.so --threads 2

Prints one line per shape: milliseconds of both and the speed-up (>= 1: the
op is no slower). --preset CAKES123D_P / CAKES12D_P uses the split positions
of that preset (with their paper widths) instead of 3x3x3 everywhere.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

# (C_in, C_out, input D, H, W, kernel, stride), the 3D network's convolutions;
# "pos" marks the positions a preset splits.
SHAPES = [
    (3, 64, 8, 224, 224, (1, 7, 7), (1, 2, 2), "stem"),
    (64, 64, 8, 56, 56, (1, 1, 1), (1, 1, 1), ""),
    (64, 64, 8, 56, 56, (3, 3, 3), (1, 1, 1), "pos1"),
    (64, 256, 8, 56, 56, (1, 1, 1), (1, 1, 1), ""),
    (256, 64, 8, 56, 56, (1, 1, 1), (1, 1, 1), ""),
    (256, 128, 8, 56, 56, (1, 1, 1), (1, 1, 1), ""),
    (128, 128, 8, 56, 56, (3, 3, 3), (1, 2, 2), "pos2s"),
    (256, 512, 8, 56, 56, (1, 1, 1), (1, 2, 2), ""),
    (128, 128, 8, 28, 28, (3, 3, 3), (1, 1, 1), "pos2"),
    (128, 512, 8, 28, 28, (1, 1, 1), (1, 1, 1), ""),
    (512, 128, 8, 28, 28, (1, 1, 1), (1, 1, 1), ""),
    (512, 256, 8, 28, 28, (1, 1, 1), (1, 1, 1), ""),
    (256, 256, 8, 28, 28, (3, 3, 3), (1, 2, 2), "pos3s"),
    (512, 1024, 8, 28, 28, (1, 1, 1), (1, 2, 2), ""),
    (256, 256, 8, 14, 14, (3, 3, 3), (1, 1, 1), "pos3"),
    (256, 1024, 8, 14, 14, (1, 1, 1), (1, 1, 1), ""),
    (1024, 256, 8, 14, 14, (1, 1, 1), (1, 1, 1), ""),
    (1024, 512, 8, 14, 14, (1, 1, 1), (1, 1, 1), ""),
    (512, 512, 8, 14, 14, (3, 3, 3), (1, 2, 2), "pos4s"),
    (1024, 2048, 8, 14, 14, (1, 1, 1), (1, 2, 2), ""),
    (512, 512, 8, 7, 7, (3, 3, 3), (1, 1, 1), "pos4"),
    (512, 2048, 8, 7, 7, (1, 1, 1), (1, 1, 1), ""),
    (2048, 512, 8, 7, 7, (1, 1, 1), (1, 1, 1), ""),
]

# One representative split per stage (the first block's) of the paper's
# presets; widths 64, 128, 256, 512.
PRESETS = {
    "CAKES123D_P": {1: [((3, 3, 3), 28), ((1, 3, 3), 35), ((3, 1, 1), 1)],
                    2: [((3, 3, 3), 35), ((1, 3, 3), 54), ((3, 1, 1), 39)],
                    3: [((3, 3, 3), 133), ((1, 3, 3), 76), ((3, 1, 1), 47)],
                    4: [((3, 3, 3), 257), ((1, 3, 3), 91), ((3, 1, 1), 164)]},
    "CAKES12D_P": {1: [((1, 3, 3), 32), ((3, 1, 1), 32)],
                   2: [((1, 3, 3), 90), ((3, 1, 1), 38)],
                   3: [((1, 3, 3), 173), ((3, 1, 1), 83)],
                   4: [((1, 3, 3), 293), ((3, 1, 1), 219)]},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--preset", choices=sorted(PRESETS))
    args = ap.parse_args()
    torch.ops.load_library(args.lib)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def fused(x, ws, stride):
        return torch.ops.cakes.shrunk_conv3d(x, ws, list(stride), [1, 1, 1])

    def per_group(x, ws, stride):
        outs = [F.conv3d(x, w, stride=stride,
                         padding=tuple(k // 2 for k in w.shape[2:]))
                for w in ws if w.shape[0]]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)

    print(f"threads {args.threads}, medians of {args.repeats}; speed-up = "
          "per-group F.conv3d + cat time / op time")
    print(f"{'C_in->C_out input kernel/split stride':58s} {'fwd op':>8s} "
          f"{'fwd ref':>8s} {'x':>5s} {'f+b op':>8s} {'f+b ref':>8s} {'x':>5s}")
    worst = [float("inf"), float("inf")]
    for c_in, c_out, d, h, w, k, s, tag in SHAPES:
        groups = [(k, c_out)]
        if args.preset and tag.startswith("pos"):
            groups = PRESETS[args.preset][int(tag[3])]
            c_out = sum(c for _, c in groups)
        x = torch.randn(1, c_in, d, h, w)
        ws = [torch.randn(c, c_in, *kk) * 0.05 for kk, c in groups]
        xg = x.clone().requires_grad_(True)
        wg = [t.clone().requires_grad_(True) for t in ws]
        gy = torch.randn_like(fused(x, ws, s))

        def f_only(fn):
            def run():
                with torch.no_grad():
                    fn(x, ws, s)
            return run

        def f_b(fn):
            def run():
                y = fn(xg, wg, s)
                y.backward(gy)
                xg.grad = None
                for t in wg:
                    t.grad = None
            return run

        runs = [f_only(fused), f_only(per_group), f_b(fused), f_b(per_group)]
        for _ in range(args.warmup):
            for r in runs:
                r()
        times = [[] for _ in runs]
        for _ in range(args.repeats):
            for i, r in enumerate(runs):
                t0 = time.perf_counter()
                r()
                times[i].append(time.perf_counter() - t0)
        m = [statistics.median(t) * 1e3 for t in times]
        name = (f"{c_in}->{c_out} {d}x{h}x{w} "
                + ",".join(f"{a}x{b}x{c}:{n}" for (a, b, c), n in groups)
                + f" /{s[1]}")
        sf, sb = m[1] / m[0], m[3] / m[2]
        worst = [min(worst[0], sf), min(worst[1], sb)]
        print(f"{name:58s} {m[0]:8.2f} {m[1]:8.2f} {sf:5.2f} "
              f"{m[2]:8.2f} {m[3]:8.2f} {sb:5.2f}", flush=True)
    print(f"lowest speed-up: forward {worst[0]:.2f}, forward+backward "
          f"{worst[1]:.2f}")


if __name__ == "__main__":
    main()
