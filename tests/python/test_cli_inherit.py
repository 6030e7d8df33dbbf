"""Weight inheritance through the command line (docs/WEIGHTS.md, docs/CAKES.md
§4): `cakes search` on tiny data, `cakes derive --from search.ckpt`, then the
derived network with the inherited weights from `cakes train --init
search.ckpt` and `cakes import search.ckpt`. Their outputs must equal the
super-network's selected sub-network's, computed here by PyTorch from the
search checkpoint's own tensors: the super-network (tests/models/
paper_fixture.py's, which computes our I3D ResNet-50) with the BatchNorm
outputs of the channels the derivation drops zeroed.
"""
import json
import os
import re
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
from paper_fixture import BLOCKS, ConvT, PaperNet  # noqa: E402
from test_cli_weights import read_checkpoint, write_reference  # noqa: E402  (helpers, no tests)

WIDTH = 8
CANDIDATES = ["3x3x3", "1x3x3", "3x1x1"]
VOLUME = [27, 9, 3]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    import subprocess
    out = tmp_path_factory.mktemp("synth") / "synth"
    cli = os.path.abspath(os.environ.get("CAKES_CLI", "build/cakes"))
    subprocess.run([cli, "synth", "--out", str(out), "--videos", "16", "--frames", "8", "--size", "32"],
                   check=True, capture_output=True)
    return out


def data_flags(synth):
    return ["--frames-list", synth / "train.txt", "--categories", synth / "category.txt",
            "--frames", 4, "--size", 32]


# Our layer names -> the paper code's (what cakes import reads, inverted).
RULES = [
    (r"^conv1\.weight_1x7x7$", "base_model.conv1.weight"),
    (r"^conv1\.bn\.(.*)$", r"base_model.bn1.\1"),
    (r"^(layer\d\.\d+)\.conv1\.weight_1x1x1$", r"base_model.\1.conv1.weight"),
    (r"^(layer\d\.\d+)\.conv1\.bn\.(.*)$", r"base_model.\1.bn1.\2"),
    (r"^(layer\d\.\d+)\.conv2\.bn\.(.*)$", r"base_model.\1.convT.out.0.\2"),
    (r"^(layer\d\.\d+)\.conv3\.weight_1x1x1$", r"base_model.\1.conv3.weight"),
    (r"^(layer\d\.\d+)\.conv3\.bn\.(.*)$", r"base_model.\1.bn3.\2"),
    (r"^(layer\d\.\d+)\.downsample\.weight_1x1x1$", r"base_model.\1.downsample.0.weight"),
    (r"^(layer\d\.\d+)\.downsample\.bn\.(.*)$", r"base_model.\1.downsample.1.\2"),
    (r"^fc\.(.*)$", r"new_fc.\1"),
]


def paper_key(ours):
    m = re.match(r"^(layer\d\.\d+)\.conv2\.weight_(\w+)$", ours)
    if m:
        return "base_model.%s.convT.convs.%d.0.weight" % (m.group(1), CANDIDATES.index(m.group(2)))
    for pattern, repl in RULES:
        if re.match(pattern, ours):
            return re.sub(pattern, repl, ours)
    raise KeyError(ours)


def selected_subnetwork(search_ckpt, classes, blocks=None):
    """The super-network of the checkpoint in PyTorch, in eval mode, with per
    searched layer the C_out channels of largest |gamma| kept (docs/CAKES.md
    §4) or, given a configuration's blocks, per candidate the channels of
    largest |gamma| it counts; the others' BatchNorm outputs zeroed. Returns
    it and the kept channels per layer."""
    sd = read_checkpoint(search_ckpt)
    configs = [[(k, WIDTH << s) for k in CANDIDATES] for s, n in enumerate(BLOCKS) for _ in range(n)]
    net = PaperNet("super_conv1_2_3d", configs, width=WIDTH, classes=classes).eval()
    theirs = net.state_dict()
    mapped = {paper_key(k): v for k, v in sd.items()}
    assert set(mapped) == set(theirs), set(mapped) ^ set(theirs)
    net.load_state_dict(mapped)
    kept = []
    with torch.no_grad():
        layers = [m for m in net.modules() if isinstance(m, ConvT)]
        for i, m in enumerate(layers):
            bn = m.out[0]
            planes = bn.weight.numel() // len(CANDIDATES)
            imp = bn.weight.abs()
            if blocks is None:
                groups = [(0, 3 * planes, planes)]
            else:
                groups = [(g * planes, (g + 1) * planes, blocks[i].get(k, 0)) for g, k in enumerate(CANDIDATES)]
            keep = []
            for lo, hi, count in groups:
                # Ties (channels a P step never drew keep gamma = 1) go to the
                # cheaper candidate, then the lower index.
                order = sorted(range(lo, hi), key=lambda c: (-float(imp[c]), VOLUME[c // planes], c))
                keep += order[:count]
            keep = torch.tensor(sorted(keep), dtype=torch.long)
            dropped = torch.ones(3 * planes, dtype=torch.bool)
            dropped[keep] = False
            bn.weight[dropped] = 0
            bn.bias[dropped] = 0
            kept.append(keep)
    return net, kept


def relative_difference(stdout):
    return float(stdout.split("max relative difference")[1].split()[0])


@pytest.mark.parametrize("mode", ["P", "C"])
def test_derived_network_computes_the_selected_subnetwork(cli, tmp_path, synth, mode):
    run = tmp_path / "search"
    cli("search", "--net", "i3d_resnet50", "--width", WIDTH, "--candidates", ",".join(CANDIDATES),
        "--mode", mode, *data_flags(synth), "--epochs", 1, "--batch", 8, "--lr", 0.05, "--out-dir", run)
    ckpt = run / "search.ckpt"
    net, kept = selected_subnetwork(ckpt, classes=4)
    write_reference(net, tmp_path / "io.pt")

    # cakes derive: the configuration of those kept channels, the one the
    # search wrote.
    cli("derive", "--from", ckpt, "--out", tmp_path / "derived.json")
    blocks = json.load(open(tmp_path / "derived.json"))["blocks"]
    assert blocks == json.load(open(run / "config.json"))["blocks"]
    for block, keep in zip(blocks, kept):
        planes = len(keep)
        counts = {k: int(((keep >= i * planes) & (keep < (i + 1) * planes)).sum())
                  for i, k in enumerate(CANDIDATES)}
        assert {k: block.get(k, 0) for k in CANDIDATES} == counts, (block, counts)

    # cakes train --init search.ckpt: the derived network, checked against
    # PyTorch before it trains, and then trained.
    r = cli("train", "--init", ckpt, "--init-check", tmp_path / "io.pt", *data_flags(synth),
            "--epochs", 1, "--batch", 8, "--lr", 0.01, "--out-dir", tmp_path / "ft")
    assert "search checkpoint: the derived network, weights inherited" in r.stdout, r.stdout
    assert relative_difference(r.stdout) < 1e-4, r.stdout
    assert (tmp_path / "ft" / "checkpoint.pt").exists()

    # cakes import search.ckpt: the same network as a checkpoint, whose
    # tensors are the super-network's kept ones.
    r = cli("import", ckpt, "--out", tmp_path / "derived.pt", "--check", tmp_path / "io.pt")
    assert relative_difference(r.stdout) < 1e-4, r.stdout
    derived, sup = read_checkpoint(tmp_path / "derived.pt"), read_checkpoint(ckpt)
    keep = kept[0]
    for i, k in enumerate(CANDIDATES):
        rows = keep[(keep >= i * WIDTH) & (keep < (i + 1) * WIDTH)] - i * WIDTH
        if len(rows):
            torch.testing.assert_close(derived["layer1.0.conv2.weight_" + k], sup["layer1.0.conv2.weight_" + k][rows],
                                       rtol=0, atol=0)
    torch.testing.assert_close(derived["layer1.0.conv3.weight_1x1x1"], sup["layer1.0.conv3.weight_1x1x1"][:, keep],
                               rtol=0, atol=0)


def test_budgeted_derivation_is_inherited(cli, tmp_path, synth):
    """A derivation under a MAC budget (cakes derive --target-macs), given to
    train --init search.ckpt as --config: the derived network of that
    configuration, inheriting per candidate the channels it counts."""
    run = tmp_path / "search"
    cli("search", "--net", "i3d_resnet50", "--width", WIDTH, "--candidates", ",".join(CANDIDATES),
        "--mode", "C", *data_flags(synth), "--epochs", 1, "--batch", 8, "--lr", 0.05, "--out-dir", run)
    ckpt = run / "search.ckpt"
    cli("derive", "--from", ckpt, "--out", tmp_path / "half.json", "--target-macs", 0.5)
    half = json.load(open(tmp_path / "half.json"))["blocks"]
    assert half != json.load(open(run / "config.json"))["blocks"]
    net, _ = selected_subnetwork(ckpt, classes=4, blocks=half)
    write_reference(net, tmp_path / "io.pt")
    r = cli("train", "--init", ckpt, "--config", tmp_path / "half.json", "--init-check", tmp_path / "io.pt",
            *data_flags(synth), "--epochs", 1, "--batch", 8, "--lr", 0.01, "--out-dir", tmp_path / "ft")
    assert "search checkpoint: the derived network of the configuration, weights inherited" in r.stdout, r.stdout
    assert relative_difference(r.stdout) < 1e-4, r.stdout
    # A configuration that is no derivation of it (not its candidates) is
    # refused in one line.
    other = [{"3x3x3": sum(b.values())} for b in half]
    json.dump({"network": "i3d_resnet50", "width": WIDTH, "op": "cakes", "blocks": other},
              open(tmp_path / "other.json", "w"))
    r = cli("train", "--init", ckpt, "--config", tmp_path / "other.json", *data_flags(synth),
            "--out-dir", tmp_path / "ft2", check=False)
    assert r.returncode == 1 and "is not a derivation of" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
