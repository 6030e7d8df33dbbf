"""The Python examples of docs/PYTHON.md and README.md run as written, in
order, each file in one namespace."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def examples(name):
    return re.findall(r"```python\n(.*?)```", open(os.path.join(ROOT, name)).read(), re.S)


def run(name, tmp_path, monkeypatch):
    blocks = examples(name)
    assert blocks, name
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{name} example {i + 1}", "exec"), namespace)
    return namespace


def test_python_md_examples_run(tmp_path, monkeypatch):
    ns = run("docs/PYTHON.md", tmp_path, monkeypatch)
    assert (tmp_path / "config.json").exists()
    assert ns["used"]  # the inflation example used the 2D keys


def test_readme_python_example_runs(tmp_path, monkeypatch, cli):
    run("README.md", tmp_path, monkeypatch)
    info = cli("info", "--net", "i3d_resnet18", "--width", 16, "--config", tmp_path / "config.json")
    assert "GMACs" in info.stdout
