#!/usr/bin/env python3
"""The reproduction protocol of docs/FIDELITY.md: does CAKES give a better
accuracy-cost trade-off than 3D, 2D and P3D, on the demo's two tasks?

For each task (the MRI tissue segmentation with its held-out hemisphere, and
the motion-direction videos) and each seed it trains, with one schedule per
task and only through the `cakes` command-line tool:
  - the 3D, 2D (1x3x3) and P3D networks;
  - CAKES from one cost-priority search (mode C) derived at MAC budgets of
    0.3, 0.5 and 0.7 of the 3D network (`cakes derive --target-macs`);
  - CAKES from one performance-priority search (mode P);
  - every CAKES network twice: from scratch, and from the weights of its
    search (`cakes train --init search.ckpt`).
Then it evaluates each final checkpoint (the last epoch's: no choice of
epoch on the evaluation data), measures MACs with `cakes info`, and writes
  OUT/results.json   one record per run (commands' outputs are next to it);
  OUT/table.md       mean +- std per network, and the verdict on the aim;
  OUT/fidelity.svg   score against MACs: every run a dot, means with error
                     bars, the Pareto front of the means marked.

Each run is a folder; a run whose result.json exists is not run again, so an
interrupted protocol continues where it stopped. Runs go JOBS at a time, one
LibTorch thread each. Only the standard library is needed:

    python3 benchmarks/fidelity/fidelity.py --build build --out fidelity_out

--quick shrinks every schedule and size to check that the protocol runs
(tests/python/test_fidelity.py); its figures mean nothing.
"""
import argparse
import concurrent.futures
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time

BUDGETS = (0.3, 0.5, 0.7)

# Each task: its data, its network, one schedule for every network trained on
# it (docs/FIDELITY.md says why these lengths), and its search.
TASKS = {
    "mri": {
        "label": "MRI tissue (held-out hemisphere)",
        "metric": "Dice %",
        "score_key": "mean_dice_foreground",
        "net": ["--net", "res_encoder_decoder"],
        "data": lambda d: ["--msd", d, "--patch", "32", "64", "64"],
        "eval_data": lambda d: ["--msd", d],
        "cost_input": "1x1x64x96x64",
        "train": ["--epochs", "96", "--lr", "0.002", "--optimizer", "adamw",
                  "--weight-decay", "1e-4", "--batch", "2"],
        "candidates": "volumetric_all",
        "search": ["--epochs", "48", "--lr", "0.002", "--batch", "2"],
        "quick": {"--epochs": "2"},
    },
    "video": {
        "label": "motion direction (synthetic videos)",
        "metric": "top-1 %",
        "score_key": "top1",
        "net": ["--net", "i3d_resnet18", "--width", "16"],
        "data": lambda d: [
            "--frames-list", d + "/train.txt",
            "--frames-val-list", d + "/val.txt",
            "--categories", d + "/category.txt",
            "--flip-swaps", "0:1", "--frames", "8", "--size", "32"],
        "eval_data": None,  # the same as "data"
        "cost_input": "1x3x8x32x32",
        "train": ["--epochs", "30", "--lr", "0.05", "--batch", "16",
                  "--warmup", "1"],
        "candidates": "3x3x3,1x3x3,3x1x1",
        "search": ["--epochs", "15", "--lr", "0.05", "--batch", "16"],
        "quick": {"--epochs": "1"},
    },
}

BASELINES = (("3D", "conv3d"), ("2D", "conv2d"), ("P3D", "p3d"))

_print_lock = threading.Lock()


def say(text):
    with _print_lock:
        print(text, flush=True)


class Protocol:
    def __init__(self, args):
        self.args = args
        self.cakes = os.path.abspath(os.path.join(args.build, "cakes"))
        self.demo = os.path.abspath(os.path.join(args.build, "cakes-demo"))
        self.out = os.path.abspath(args.out)
        for tool in (self.cakes, self.demo):
            if not os.access(tool, os.X_OK):
                sys.exit(f"fidelity: error: {tool} missing: build first (make)")

    # ---- running the CLI ----
    def run(self, args, log):
        """Runs `cakes ARGS`, appending its output to LOG; raises on failure."""
        line = "cakes " + " ".join(shlex.quote(a) for a in args)
        say("$ " + line)
        with open(log, "a") as f:
            f.write("$ " + line + "\n")
            f.flush()
            rc = subprocess.call([self.cakes] + args, stdout=f,
                                 stderr=subprocess.STDOUT)
        if rc != 0:
            raise RuntimeError(f"step failed (exit {rc}, see {log}): {line}")

    def schedule(self, task, flags):
        """A task's schedule, shortened by --quick."""
        flags = list(flags)
        if self.args.quick:
            for k, v in TASKS[task]["quick"].items():
                flags[flags.index(k) + 1] = v
        return flags

    # ---- data ----
    def data_dir(self, task):
        return os.path.join(self.out, "data", task)

    def make_data(self, task):
        d = self.data_dir(task)
        if os.path.exists(d):
            return
        os.makedirs(os.path.dirname(d), exist_ok=True)
        tmp = d + ".partial"
        subprocess.call(["rm", "-rf", tmp])
        log = os.path.join(self.out, "data", task + ".log")
        if task == "mri":
            say(f"$ cakes-demo --mri-task {tmp}")
            with open(log, "w") as f:
                if subprocess.call([self.demo, "--mri-task", tmp], stdout=f,
                                   stderr=subprocess.STDOUT) != 0:
                    raise RuntimeError(f"cakes-demo --mri-task failed: {log}")
        else:
            videos = "40" if self.args.quick else "240"
            self.run(["synth", "--out", tmp, "--videos", videos, "--frames",
                      "16", "--size", "48", "--format", "frames", "--seed",
                      "1", "--force"], log)
        os.rename(tmp, d)

    # ---- one job: a folder with result.json when done ----
    def job(self, task, name, seed, steps, record):
        """Runs STEPS (lists of cakes arguments) in the run's folder unless
        its result.json exists; then fills RECORD from the folder."""
        d = os.path.join(self.out, "runs", task, f"{name}_s{seed}")
        done = os.path.join(d, "result.json")
        if os.path.exists(done):
            with open(done) as f:
                return json.load(f)
        os.makedirs(d, exist_ok=True)
        log = os.path.join(d, "commands.log")
        t0 = time.time()
        for step in steps(d):
            self.run(step, log)
        r = dict(task=task, network=name, seed=seed,
                 seconds=round(time.time() - t0, 1))
        r.update(record(d))
        with open(done + ".tmp", "w") as f:
            json.dump(r, f, indent=1)
        os.replace(done + ".tmp", done)
        return r

    def common(self, task):
        t = TASKS[task]
        return t["net"] + t["data"](self.data_dir(task)) + [
            "--workers", "1", "--threads", "1"]

    def train_eval(self, task, name, seed, net_flags, init=None):
        """Trains one network of TASK and evaluates its last checkpoint."""
        t = TASKS[task]

        def steps(d):
            train = ["train"] + self.common(task) + net_flags + self.schedule(
                task, t["train"]) + ["--seed", str(seed), "--val-every", "0",
                                     "--log-every", "1000", "--out-dir", d]
            if init:
                train += ["--init", init]
            eval_data = (t["eval_data"] or t["data"])(self.data_dir(task))
            return [
                train,
                ["eval", "--checkpoint", d + "/checkpoint.pt", "--threads",
                 "1", "--out", d + "/eval.json"] + eval_data,
            ]

        def record(d):
            with open(d + "/eval.json") as f:
                score = json.load(f)[t["score_key"]] * 100
            cost = self.info(d + "/checkpoint.pt", t["cost_input"])
            return dict(init="inherited" if init else "scratch",
                        score=score, **cost)

        return self.job(task, name, seed, steps, record)

    def info(self, checkpoint, cost_input):
        """MACs and parameters of a checkpoint's network (`cakes info`)."""
        args = ["info", "--checkpoint", checkpoint, "--input", cost_input,
                "--json"]
        say("$ cakes " + " ".join(shlex.quote(a) for a in args))
        out = subprocess.run([self.cakes] + args, check=True,
                             capture_output=True, text=True)
        j = json.loads(out.stdout)
        return dict(macs=j["total_macs"], params=j["total_params"])

    def search(self, task, mode, seed):
        """One search of TASK in MODE; returns its folder."""
        t = TASKS[task]

        def steps(d):
            return [["search"] + self.common(task) + [
                "--candidates", t["candidates"], "--mode", mode] +
                self.schedule(task, t["search"]) + [
                "--seed", str(seed), "--log-every", "1000", "--out-dir", d]]

        self.job(task, f"search{mode}", seed, steps, lambda d: {})
        return os.path.join(self.out, "runs", task, f"search{mode}_s{seed}")

    def derive(self, task, search_dir, budget):
        cfg = os.path.join(search_dir, f"budget{budget}.json")
        if not os.path.exists(cfg):
            self.run(["derive", "--from", search_dir + "/search.ckpt",
                      "--target-macs", str(budget), "--out", cfg],
                     os.path.join(search_dir, "commands.log"))
        return cfg

    # ---- the whole protocol ----
    def main(self):
        t0 = time.time()
        os.makedirs(self.out, exist_ok=True)
        tasks = self.args.tasks.split(",")
        for task in tasks:
            self.make_data(task)
        seeds = [int(s) for s in self.args.seeds.split(",")]
        results = []
        # Searches and their networks wait on each other: one pool large
        # enough that a search's follow-up runs never starve the workers that
        # run searches (those waits hold no CPU).
        with concurrent.futures.ThreadPoolExecutor(self.args.jobs) as cpu, \
                concurrent.futures.ThreadPoolExecutor(64) as waits:
            pending = []
            for task in tasks:
                for seed in seeds:
                    for name, op in BASELINES:
                        pending.append(cpu.submit(self.train_eval, task, name,
                                                  seed, ["--op", op]))
                    for mode in ("C", "P"):
                        pending.append(waits.submit(
                            self.searched, cpu, task, seed, mode))
            for f in pending:
                r = f.result()
                results.extend(r if isinstance(r, list) else [r])
        results.sort(key=lambda r: (r["task"], r["network"], r["seed"]))
        wall = time.time() - t0
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        rows = summarize(results)
        md = table(rows, tasks) + "\n" + verdicts(rows, tasks)
        with open(os.path.join(self.out, "table.md"), "w") as f:
            f.write(md)
        with open(os.path.join(self.out, "fidelity.svg"), "w") as f:
            f.write(picture(results, rows, tasks))
        print("\n" + md)
        print(f"results: {self.out}/results.json, table.md, fidelity.svg "
              f"({wall:.0f} s this invocation)")

    def searched(self, cpu, task, seed, mode):
        """Search (on the CPU pool), derive, then the CAKES runs."""
        s = cpu.submit(self.search, task, mode, seed).result()
        nets = ([(f"CAKES-C{b}", self.derive(task, s, b)) for b in BUDGETS]
                if mode == "C" else [("CAKES-P", s + "/config.json")])
        futures = []
        for name, cfg in nets:
            futures.append(cpu.submit(self.train_eval, task, name, seed,
                                      ["--config", cfg]))
            futures.append(cpu.submit(self.train_eval, task, name + "+inh",
                                      seed, ["--config", cfg],
                                      init=s + "/search.ckpt"))
        return [f.result() for f in futures]


# ---- summary: pure functions of the records ----
def mean_std(values):
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return m, s


def summarize(results):
    """One row per (task, network): n, score and MACs mean/std, MAC ratio to
    the task's 3D network, and whether the row is on the Pareto front."""
    groups = {}
    for r in results:
        if "score" in r:
            groups.setdefault((r["task"], r["network"]), []).append(r)
    rows = []
    for (task, net), rs in sorted(groups.items()):
        sm, ss = mean_std([r["score"] for r in rs])
        mm, ms = mean_std([r["macs"] for r in rs])
        pm, _ = mean_std([r["params"] for r in rs])
        rows.append(dict(task=task, network=net, n=len(rs), score=sm,
                         score_std=ss, macs=mm, macs_std=ms, params=pm,
                         seconds=statistics.fmean(r["seconds"] for r in rs)))
    for task in {r["task"] for r in rows}:
        mine = [r for r in rows if r["task"] == task]
        ref = [r for r in mine if r["network"] == "3D"]
        for r in mine:
            r["ratio"] = r["macs"] / ref[0]["macs"] if ref else float("nan")
            r["front"] = on_front(r, mine)
    return rows


def on_front(r, rows):
    """No other row has at most r's MACs and a higher mean score, or fewer
    MACs and at least its score."""
    for o in rows:
        if o is r:
            continue
        if (o["macs"] <= r["macs"] and o["score"] > r["score"]) or \
                (o["macs"] < r["macs"] and o["score"] >= r["score"]):
            return False
    return True


def table(rows, tasks):
    lines = []
    for task in tasks:
        t = TASKS[task]
        mine = sorted((r for r in rows if r["task"] == task),
                      key=lambda r: r["macs"])
        if not mine:
            continue
        lines += [f"**{t['label']}** ({t['metric']}, cost at "
                  f"{t['cost_input']})", "",
                  "| network | MMACs | × 3D | params (M) | score mean ± std "
                  "| seeds | s / run | Pareto |",
                  "|---|---:|---:|---:|---:|---:|---:|:-:|"]
        for r in mine:
            macs = f"{r['macs'] / 1e6:.1f}"
            if r["macs_std"] > 0:
                macs += f" ± {r['macs_std'] / 1e6:.1f}"
            lines.append(
                f"| {r['network']} | {macs} | {r['ratio']:.2f} | "
                f"{r['params'] / 1e6:.3f} | {r['score']:.1f} ± "
                f"{r['score_std']:.1f} | {r['n']} | {r['seconds']:.0f} | "
                f"{'●' if r['front'] else ''} |")
        lines.append("")
    return "\n".join(lines)


def verdicts(rows, tasks):
    """The aim of docs/FIDELITY.md, checked on the rows."""
    out = []
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        by = {r["network"]: r for r in mine}
        ref = by.get("3D")
        cakes = [r for r in mine if r["network"].startswith("CAKES")
                 and r["ratio"] <= 0.6]
        if not ref or not cakes:
            continue
        best = max(cakes, key=lambda r: r["score"])
        # "matches 3D within one std": within the larger of the two stds
        tol = max(ref["score_std"], best["score_std"])
        ok = best["score"] >= ref["score"] - tol
        line = (f"- {task}: best CAKES at ≤0.6× 3D MACs is {best['network']} "
                f"({best['score']:.1f} ± {best['score_std']:.1f} at "
                f"{best['ratio']:.2f}×) against 3D {ref['score']:.1f} ± "
                f"{ref['score_std']:.1f}: "
                f"{'matches or beats' if ok else 'below'} 3D within one std")
        for base in ("2D", "P3D"):
            b = by.get(base)
            if not b:
                continue
            # CAKES networks at no more MACs than the baseline
            cheaper = [r for r in mine if r["network"].startswith("CAKES")
                       and r["macs"] <= b["macs"] * 1.05]
            if cheaper:
                c = max(cheaper, key=lambda r: r["score"])
                line += (f"; at ≤{base}'s MACs the best CAKES is "
                         f"{c['network']} {c['score']:.1f} vs {base} "
                         f"{b['score']:.1f}")
            else:
                line += f"; no CAKES network at or below {base}'s MACs"
        out.append(line)
    return "\n".join(out) + "\n"


def picture(results, rows, tasks):
    """SVG: one panel per task, score against MACs (log scale)."""
    pw, ph, ml, mb, mt = 440, 320, 60, 45, 30
    width = pw * len(tasks)
    def colour(name):
        return {"3D": "#d62728", "2D": "#7f7f7f", "P3D": "#ff7f0e",
                "CAKES-P": "#9467bd"}.get(name.split("+")[0], "#1f77b4")

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
         f'height="{ph + 40}" font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{ph + 40}" fill="white"/>']
    for i, task in enumerate(tasks):
        x0 = i * pw
        mine = [r for r in rows if r["task"] == task]
        runs = [r for r in results if r["task"] == task and "score" in r]
        if not mine:
            continue
        lo = min(r["macs"] for r in runs) * 0.8
        hi = max(r["macs"] for r in runs) * 1.25
        ys = [r["score"] for r in runs]
        ylo = max(0.0, math.floor(min(ys) / 10) * 10)
        yhi = min(100.0, math.ceil(max(ys) / 10) * 10)
        if yhi <= ylo:
            yhi = ylo + 10

        def px(m):
            return x0 + ml + (math.log(m) - math.log(lo)) / (
                math.log(hi) - math.log(lo)) * (pw - ml - 20)

        def py(v):
            return mt + (yhi - v) / (yhi - ylo) * (ph - mt - mb)

        t = TASKS[task]
        s.append(f'<text x="{x0 + ml}" y="18" font-size="13">{t["label"]}'
                 '</text>')
        s.append(f'<line x1="{x0 + ml}" y1="{ph - mb}" x2="{x0 + pw - 20}" '
                 f'y2="{ph - mb}" stroke="black"/>')
        s.append(f'<line x1="{x0 + ml}" y1="{mt}" x2="{x0 + ml}" '
                 f'y2="{ph - mb}" stroke="black"/>')
        step = next(st for st in (1, 2, 5, 10, 20, 25)
                    if (yhi - ylo) / st <= 8)
        v = ylo
        while v <= yhi + 1e-9:
            s.append(f'<text x="{x0 + ml - 6}" y="{py(v) + 4:.1f}" '
                     f'text-anchor="end">{v:g}</text>')
            v += step
        for m in nice_ticks(lo, hi):
            s.append(f'<text x="{px(m):.1f}" y="{ph - mb + 15}" '
                     f'text-anchor="middle">{m / 1e6:g}</text>')
        s.append(f'<text x="{x0 + ml + (pw - ml) / 2}" y="{ph - 8}" '
                 f'text-anchor="middle">MMACs (log)</text>')
        s.append(f'<text x="{x0 + 14}" y="{(ph - mb + mt) / 2}" '
                 f'transform="rotate(-90 {x0 + 14} {(ph - mb + mt) / 2})" '
                 f'text-anchor="middle">{t["metric"]}</text>')
        front = sorted((r for r in mine if r["front"]),
                       key=lambda r: r["macs"])
        if len(front) > 1:
            pts = " ".join(f"{px(r['macs']):.1f},{py(r['score']):.1f}"
                           for r in front)
            s.append(f'<polyline points="{pts}" fill="none" stroke="#2ca02c" '
                     'stroke-width="6" stroke-opacity="0.25"/>')
        for r in runs:
            c = colour(r["network"])
            s.append(f'<circle cx="{px(r["macs"]):.1f}" '
                     f'cy="{py(r["score"]):.1f}" r="2.2" fill="{c}" '
                     'fill-opacity="0.45"/>')
        # Labels alternate above and below in MAC order: networks of nearly
        # equal cost would otherwise print over each other.
        for k, r in enumerate(sorted(mine, key=lambda r: r["macs"])):
            c = colour(r["network"])
            x, y = px(r["macs"]), py(r["score"])
            # The bar, clipped to the panel (a score never leaves 0..100).
            top = min(yhi, r["score"] + r["score_std"])
            bottom = max(ylo, r["score"] - r["score_std"])
            s.append(f'<line x1="{x:.1f}" y1="{py(top):.1f}" '
                     f'x2="{x:.1f}" y2="{py(bottom):.1f}" stroke="{c}"/>')
            mark = "rect" if r["network"].endswith("+inh") else "circle"
            if mark == "rect":
                s.append(f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" '
                         f'width="7" height="7" fill="{c}"/>')
            else:
                s.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" '
                         f'fill="{c}"/>')
            label = r["network"].replace("CAKES-", "")
            s.append(f'<text x="{x + 5:.1f}" y="{y + (-6 if k % 2 else 12):.1f}" '
                     f'font-size="9" fill="{c}">{label}</text>')
    s.append(f'<text x="8" y="{ph + 22}" font-size="10">small dots: single '
             'runs; large marks: mean ± std over seeds (squares: inherited '
             'weights, "+inh"); green band: Pareto front of the means</text>')
    s.append(f'<text x="8" y="{ph + 36}" font-size="10">red 3D, grey 2D, '
             'orange P3D; blue CAKES from the cost-priority search at budgets '
             '0.3/0.5/0.7 of 3D (C0.3...), purple from the '
             'performance-priority search (P)</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def nice_ticks(lo, hi):
    ticks = []
    e = 10 ** math.floor(math.log10(lo))
    while e <= hi:
        for m in (1, 2, 5):
            if lo <= m * e <= hi:
                ticks.append(m * e)
        e *= 10
    return ticks


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="CAKES reproduction protocol (docs/FIDELITY.md)")
    ap.add_argument("--build", default="build",
                    help="folder with cakes and cakes-demo")
    ap.add_argument("--out", default="fidelity_out")
    ap.add_argument("--tasks", default="mri,video")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="runs at a time (one thread each)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny schedules: checks that the protocol runs")
    a = ap.parse_args(argv)
    for task in a.tasks.split(","):
        if task not in TASKS:
            ap.error(f"--tasks: unknown task '{task}' (known: {', '.join(TASKS)})")
    if a.jobs < 1:
        ap.error("--jobs must be at least 1")
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds: comma-separated integers, got '{a.seeds}'")
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        ap.error(f"--seeds: distinct non-negative integers, got '{a.seeds}'")
    return a


if __name__ == "__main__":
    try:
        Protocol(parse_args()).main()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        sys.exit(f"fidelity: error: {e}")
