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


def test_weights_md_workflow_runs(tmp_path, cli):
    """docs/WEIGHTS.md's workflow (inflate, search, derive with inheritance,
    fine-tune, evaluate from the checkpoint), its shell block run as written
    with this build's `cakes` for build/cakes."""
    import subprocess
    text = open(os.path.join(ROOT, "docs/WEIGHTS.md")).read()
    block = re.search(r"## Workflow.*?```sh\n(.*?)```", text, re.S).group(1)
    exe = cli("--help", check=False).args[0]
    script = block.replace("build/cakes", exe)
    p = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "inflated into the super-network" in p.stdout
    assert "search checkpoint: the derived network of the configuration, weights inherited" in p.stdout
    assert "top-1" in p.stdout and "i3d_resnet18, op cakes" in p.stdout
    assert (tmp_path / "runs" / "cakes" / "checkpoint.pt").exists()


def test_readme_shows_the_weights_workflow_that_is_tested():
    """README.md's weights workflow is docs/WEIGHTS.md's, which the test above runs."""
    text = open(os.path.join(ROOT, "docs/WEIGHTS.md")).read()
    block = re.search(r"## Workflow.*?(```sh\n.*?```)", text, re.S).group(1)
    assert block in open(os.path.join(ROOT, "README.md")).read()
