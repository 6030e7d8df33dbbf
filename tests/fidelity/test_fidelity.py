"""benchmarks/fidelity/fidelity.py (docs/FIDELITY.md): its summary on records
whose answer is known, and the protocol itself run end to end on the video
task with --quick (tiny schedules; the figures mean nothing, the plumbing
does: every network trained, evaluated and costed through the CLI, the MAC
budgets met, a rerun resuming instead of retraining).

Run as: /usr/bin/python3 test_fidelity.py <build>/libcakes.so
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

BUILD = os.path.dirname(os.path.abspath(sys.argv.pop(1))) if len(sys.argv) > 1 else "build"
HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "benchmarks", "fidelity", "fidelity.py")
sys.path.insert(0, os.path.dirname(SCRIPT))
import fidelity  # noqa: E402


def rec(net, seed, score, macs, task="video"):
    return dict(task=task, network=net, seed=seed, score=score, macs=macs, params=1e6, seconds=1.0)


class Summary(unittest.TestCase):
    def test_mean_std_ratio_and_front(self):
        rows = fidelity.summarize([
            rec("3D", 1, 90, 100), rec("3D", 2, 94, 100),
            rec("2D", 1, 30, 40), rec("2D", 2, 30, 40),
            rec("CAKES-C0.5", 1, 91, 50), rec("CAKES-C0.5", 2, 93, 50),
            rec("P3D", 1, 80, 60), rec("P3D", 2, 84, 60),
        ])
        by = {r["network"]: r for r in rows}
        self.assertAlmostEqual(by["3D"]["score"], 92)
        self.assertAlmostEqual(by["3D"]["score_std"], 2 ** 0.5 * 2)
        self.assertAlmostEqual(by["CAKES-C0.5"]["ratio"], 0.5)
        # CAKES ties 3D's mean at half its MACs: 3D is dominated, and so is
        # P3D (more MACs than CAKES, lower score); 2D costs least.
        self.assertEqual({n for n, r in by.items() if r["front"]}, {"2D", "CAKES-C0.5"})
        v = fidelity.verdicts(rows, ["video"])
        self.assertIn("CAKES-C0.5 (92.0 ± 1.4 at 0.50×) against 3D 92.0", v)
        self.assertIn("matches or beats 3D", v)

    def test_verdict_below(self):
        rows = fidelity.summarize([
            rec("3D", 1, 70, 100, "mri"), rec("3D", 2, 71, 100, "mri"),
            rec("CAKES-C0.3", 1, 60, 30, "mri"), rec("CAKES-C0.3", 2, 61, 30, "mri"),
            rec("2D", 1, 65, 35, "mri"), rec("2D", 2, 66, 35, "mri"),
        ])
        v = fidelity.verdicts(rows, ["mri"])
        self.assertIn("below 3D within one std", v)
        self.assertIn("best CAKES is CAKES-C0.3 60.5 vs 2D 65.5", v)


class Protocol(unittest.TestCase):
    def run_protocol(self, out, *extra):
        return subprocess.run(
            [sys.executable, SCRIPT, "--build", BUILD, "--out", out, "--tasks", "video", "--seeds", "1",
             "--quick", "--jobs", "2", *extra], capture_output=True, text=True)

    def test_quick_video_protocol(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "fid")
            p = self.run_protocol(out)
            self.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr[-2000:])
            with open(os.path.join(out, "results.json")) as f:
                results = json.load(f)
            names = {r["network"] for r in results}
            self.assertEqual(names, {"3D", "2D", "P3D", "CAKES-P", "CAKES-P+inh"} |
                             {f"CAKES-C{b}{i}" for b in fidelity.BUDGETS for i in ("", "+inh")})
            ref = [r for r in results if r["network"] == "3D"][0]["macs"]
            for r in results:
                self.assertTrue(0 <= r["score"] <= 100, r)
                if r["network"].startswith("CAKES-C"):
                    budget = float(r["network"][len("CAKES-C"):].split("+")[0])
                    # derive --target-macs spends its budget (fraction of the
                    # all-3x3x3 network: the same network as 3D here).
                    self.assertLessEqual(r["macs"], budget * ref + 1, r)
                    self.assertGreater(r["macs"], 0.9 * budget * ref, r)
            inherited = [r for r in results if r["network"].endswith("+inh")]
            self.assertTrue(inherited and all(r["init"] == "inherited" for r in inherited))
            with open(os.path.join(out, "table.md")) as f:
                table = f.read()
            for name in names:
                self.assertIn(f"| {name} |", table)
            svg = ET.parse(os.path.join(out, "fidelity.svg")).getroot()
            self.assertGreaterEqual(len(svg.findall("{http://www.w3.org/2000/svg}circle")), len(results))
            # A rerun finds every run done and only rewrites the summary.
            before = os.path.getmtime(os.path.join(out, "runs", "video", "3D_s1", "checkpoint.pt"))
            p = self.run_protocol(out)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("$ cakes train", p.stdout)
            self.assertEqual(before, os.path.getmtime(os.path.join(out, "runs", "video", "3D_s1", "checkpoint.pt")))

    def test_bad_arguments_are_one_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            for extra, needle in ((["--tasks", "ct"], "unknown task 'ct'"),
                                  (["--seeds", "1,x"], "--seeds"),
                                  (["--jobs", "0"], "--jobs")):
                p = self.run_protocol(os.path.join(tmp, "o"), *extra)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(needle, p.stderr)
                self.assertEqual(p.stdout, "")
            p = subprocess.run([sys.executable, SCRIPT, "--build", tmp, "--out", os.path.join(tmp, "o")],
                               capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn("missing: build first", p.stderr)


if __name__ == "__main__":
    unittest.main()
