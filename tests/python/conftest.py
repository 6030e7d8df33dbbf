"""Shared setup of the Python tests (run by ctest as `python3 -m pytest
tests/python`, with CAKES_OPS_LIBRARY and CAKES_CLI set by the CMake build).
Run by hand from the repository root after a build:

    CAKES_OPS_LIBRARY=build/libcakes_ops.so CAKES_CLI=build/cakes PYTHONPATH=python python3 -m pytest tests/python
"""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
if "CAKES_OPS_LIBRARY" not in os.environ:
    for candidate in ("build/libcakes_ops.so", "build/libcakes.so"):
        if os.path.exists(os.path.join(ROOT, candidate)):
            os.environ["CAKES_OPS_LIBRARY"] = os.path.join(ROOT, candidate)
            break

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture(scope="session")
def cli():
    """Runs the built `cakes` command; returns its stdout, fails the test with its
    stderr on a non-zero exit."""
    path = os.path.abspath(os.environ.get("CAKES_CLI", os.path.join(ROOT, "build", "cakes")))
    if not os.path.exists(path):
        pytest.fail(f"the cakes CLI is not built ({path}); set CAKES_CLI")

    def run(*args, check=True):
        p = subprocess.run([path, *map(str, args)], capture_output=True, text=True)
        if check and p.returncode != 0:
            pytest.fail(f"cakes {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr.strip()}")
        return p
    return run
