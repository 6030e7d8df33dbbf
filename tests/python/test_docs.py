"""The Python examples of docs/PYTHON.md run as written, in order, in one
namespace."""


def test_python_examples_run(docs_examples, tmp_path, monkeypatch):
    assert len(docs_examples) >= 4
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, code in enumerate(docs_examples):
        exec(compile(code, f"docs/PYTHON.md example {i + 1}", "exec"), namespace)
