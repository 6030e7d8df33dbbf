"""Two builds of `cakes` timed interleaved on the layer shapes of issue 10,
every figure relative to the fp32 FMA peak measured in the same run.

    /usr/bin/python3 benchmarks/ab_layers.py BEFORE/cakes AFTER/cakes \
        --threads 2 --rounds 3 [--model]

Per round and shape, `cakes bench layer --json` runs once with each binary
(their order alternating between rounds), and AFTER's `cakes bench peak`
measures the peak. Prints per shape the medians over rounds of the fused op's
forward and forward+backward ms for both, the speed-up BEFORE/AFTER, AFTER's
% of the median peak, and AFTER's ratio to per-group at::conv3d + cat
(>= 1: the fused op is faster). --model then times I3D ResNet-50 at 8x224^2,
batch 1, as CAKES123D_P and 3D (`cakes bench model --train`), inference and
training step, interleaved the same way. On a shared machine, the ratios are the
figures to trust: both sides of each ratio ran within seconds of each other.
"""
import argparse
import json
import re
import statistics
import subprocess

# (in, out, NxDxHxW, split, stride, label): the weak shapes (deep
# layers, pointwise at 7x7, strided) and a wide 56x56 layer for reference.
SHAPES = [
    (64, 64, "1x8x56x56", "3x3x3:22,1x3x3:21,3x1x1:21", "1x1x1", "wide 56^2"),
    (256, 256, "1x8x14x14", "3x3x3:86,1x3x3:85,3x1x1:85", "1x1x1", "deep 14^2"),
    (512, 512, "1x8x7x7", "3x3x3:171,1x3x3:171,3x1x1:170", "1x1x1", "deep 7^2"),
    (512, 512, "1x8x14x14", "3x3x3:512", "1x2x2", "strided 14^2"),
    (512, 2048, "1x8x7x7", "1x1x1:2048", "1x1x1", "pointwise 7^2"),
    (2048, 512, "1x8x7x7", "1x1x1:512", "1x1x1", "pointwise 7^2"),
    (256, 64, "1x8x56x56", "1x1x1:64", "1x1x1", "pointwise 56^2"),
]


def layer(binary, shape, threads, repeats):
    cin, cout, inp, split, stride, _ = shape
    out = subprocess.run(
        [binary, "bench", "layer", "--in", str(cin), "--out", str(cout),
         "--input", inp, "--split", split, "--stride", stride,
         "--threads", str(threads), "--repeats", str(repeats), "--json"],
        check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    fused, per_group = r["results"][0], r["results"][1]
    return fused["macs"], fused["forward_ms"], fused["forward_backward_ms"], \
        per_group["forward_ms"], per_group["forward_backward_ms"]


def model(binary, threads, repeats):
    out = subprocess.run(
        [binary, "bench", "model", "--net", "i3d_resnet50", "--frames", "8",
         "--size", "224", "--batch", "1", "--preset", "CAKES123D_P",
         "--train", "--threads", str(threads), "--repeats", str(repeats),
         "--json"], check=True, capture_output=True, text=True).stdout
    return {r["operation"]: r for r in json.loads(out)["results"]}


def peak(binary, threads):
    out = subprocess.run([binary, "bench", "peak", "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) GFLOP/s", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--model", action="store_true")
    a = ap.parse_args()
    peaks = []
    runs = {i: {"before": [], "after": []} for i in range(len(SHAPES))}
    for rnd in range(a.rounds):
        peaks.append(peak(a.after, a.threads))
        for i, s in enumerate(SHAPES):
            order = ["before", "after"] if rnd % 2 == 0 else ["after", "before"]
            for side in order:
                runs[i][side].append(layer(getattr(a, side), s, a.threads,
                                           a.repeats))
    pk = statistics.median(peaks)
    print(f"fp32 FMA peak, {a.threads} threads: median {pk:.1f} GFLOP/s "
          f"(rounds: {', '.join(f'{p:.0f}' for p in peaks)})")
    print(f"{'shape':<44} {'pass':<8} {'before ms':>9} {'after ms':>9} "
          f"{'speed-up':>8} {'% peak':>7} {'vs per-group':>12}")
    for i, s in enumerate(SHAPES):
        name = f"{s[5]}: {s[0]}->{s[1]} {s[2]} {s[3]} /{s[4]}"
        macs = runs[i]["after"][0][0]
        for col, pg, label, flops in ((1, 3, "fwd", 2 * macs),
                                      (2, 4, "fwd+bwd", 6 * macs)):
            b = statistics.median(r[col] for r in runs[i]["before"])
            f = statistics.median(r[col] for r in runs[i]["after"])
            g = statistics.median(r[pg] for r in runs[i]["after"])
            pct = flops / (f * 1e-3) / 1e9 / pk * 100
            print(f"{name:<44} {label:<8} {b:9.2f} {f:9.2f} {b / f:7.2f}x "
                  f"{pct:6.1f}% {g / f:11.2f}x")
        name = ""
    if not a.model:
        return
    nets = {"before": [], "after": []}
    for rnd in range(a.rounds):
        peaks.append(peak(a.after, a.threads))
        for side in (["before", "after"] if rnd % 2 == 0 else
                     ["after", "before"]):
            nets[side].append(model(getattr(a, side), a.threads, 5))
    pk = statistics.median(peaks)
    print(f"\nI3D ResNet-50 1x3x8x224x224, {a.threads} threads; peak now "
          f"median {pk:.1f} GFLOP/s")
    print(f"{'network':<22} {'pass':<10} {'before ms':>9} {'after ms':>9} "
          f"{'speed-up':>8} {'% peak':>7} {'/3D before':>10} {'/3D after':>9}"
          f" {'MACs /3D':>8}")
    for op in nets["after"][0]:
        macs = nets["after"][0][op]["macs"]
        mr = nets["after"][0][op]["mac_ratio_vs_3d"]
        for key, ratio, label, flops in (
                ("inference_ms", "inference_ratio_vs_3d", "inference",
                 2 * macs),
                ("train_step_ms", "train_ratio_vs_3d", "train step",
                 6 * macs)):
            b = statistics.median(r[op][key] for r in nets["before"])
            f = statistics.median(r[op][key] for r in nets["after"])
            rb = statistics.median(r[op][ratio] for r in nets["before"])
            rf = statistics.median(r[op][ratio] for r in nets["after"])
            pct = flops / (f * 1e-3) / 1e9 / pk * 100
            print(f"{op:<22} {label:<10} {b:9.0f} {f:9.0f} {b / f:7.2f}x "
                  f"{pct:6.1f}% {rb:10.2f} {rf:9.2f} {mr:8.2f}")


if __name__ == "__main__":
    main()
