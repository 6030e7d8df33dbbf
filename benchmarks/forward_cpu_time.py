"""Single-thread forward CPU time of the op on the issue's two splits (64->64,
1x8x56x56), min of 25 runs: the A/B figures in docs/DESIGN.md. CPU time of the
calling thread (one LibTorch thread runs inline) is far less sensitive to a
shared machine's load than wall time; compare two builds by running this
script alternately with each library, several times, and taking the minima.

    /usr/bin/python3 benchmarks/forward_cpu_time.py build/libcakes.so
"""
import sys
import time

import torch


def main():
    torch.ops.load_library(sys.argv[1] if len(sys.argv) > 1 else "build/libcakes.so")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(1, 64, 8, 56, 56)
    out = []
    for split in ([(3, 3, 3, 22), (1, 3, 3, 21), (3, 1, 1, 21)],
                  [(1, 3, 3, 32), (3, 1, 1, 32)]):
        ws = [torch.randn(c, 64, a, b, d) * 0.05 for a, b, d, c in split]
        def f():
            torch.ops.cakes.shrunk_conv3d(x, ws, [1, 1, 1], [1, 1, 1])
        for _ in range(2):
            f()
        ts = []
        for _ in range(25):
            t0 = time.thread_time()
            f()
            ts.append(time.thread_time() - t0)
        name = ",".join(f"{a}x{b}x{d}:{c}" for a, b, d, c in split)
        out.append(f"{name} {min(ts) * 1e3:.2f} ms")
    print("   ".join(out))


if __name__ == "__main__":
    main()
