"""Weights from elsewhere through the command line (docs/WEIGHTS.md): files in
the layout of the paper's code (github.com/yucornetto/CAKES), written here by
PyTorch in every form that code and PyTorch produce, converted by `cakes
import` and taken by `cakes train --init`; both must give PyTorch's logits.

The network is tests/models/paper_fixture.py's, written for the tests with
the paper's key names and computation, at base width 8 so the files stay
small.
"""
import collections
import json
import os
import sys
import zipfile

import pytest
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
from paper_fixture import BLOCKS, ConvT, PaperNet, _kernel, randomise_norms  # noqa: E402  the paper's network

WIDTH = 8
CLASSES = 5


# The paper's CAKES codes, their groups in its order: convst (kxkxk, 1xkxk),
# conv1_2d (1xkxk, kx1x1), conv1_2_3d (kxkxk, 1xkxk, kx1x1).
CODES = {
    "convst": ["3x3x3", "1x3x3"],
    "conv1_2d": ["1x3x3", "3x1x1"],
    "conv1_2_3d": ["3x3x3", "1x3x3", "3x1x1"],
}


def uneven_configs(kernels, seed):
    """Per block an uneven split of its width over `kernels` (some groups empty)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s, n in enumerate(BLOCKS):
        planes = WIDTH << s
        for _ in range(n):
            cuts = sorted(int(v) for v in torch.randint(0, planes + 1, (len(kernels) - 1,), generator=g))
            sizes = [b - a for a, b in zip([0] + cuts, cuts + [planes])]
            out.append(list(zip(kernels, sizes)))
    return out


def super_configs(kernels):
    return [[(k, WIDTH << s) for k in kernels] for s, n in enumerate(BLOCKS) for _ in range(n)]


def make_net(op, seed=0):
    torch.manual_seed(seed)
    if op.startswith("super"):
        configs = super_configs(CODES[op.split("_", 1)[1]])
    else:
        configs = uneven_configs(CODES[op], seed) if op in CODES else None
    net = randomise_norms(PaperNet(op, configs, width=WIDTH, classes=CLASSES).eval())
    for m in net.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.num_batches_tracked.fill_(123)
    return net


def tag_cuda(priority=1):
    """Makes torch.save record every storage at cuda:0, as a file saved from
    GPU training does (the tag is all that differs: the bytes are the same)."""
    torch.serialization.register_package(priority, lambda storage: "cuda:0", lambda storage, location: None)


def untag_cuda():
    torch.serialization._package_registry[:] = [
        p for p in torch.serialization._package_registry if p[0] != 1]


def save(obj, path, legacy=False, cuda=False):
    if cuda:
        tag_cuda()
    try:
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        if cuda:
            untag_cuda()


def write_reference(net, path):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        y = net(x)
    torch.save({"x": x, "y": y}, path)


FORMS = {
    # name: (op code, legacy, checkpoint dict, module. prefix, cuda tag)
    "zip_dict": ("conv1_2_3d", False, False, False, False),
    "legacy": ("conv1_2_3d", True, False, False, False),
    "checkpoint_dict_ordereddict": ("conv1_2_3d", False, True, False, False),
    "module_prefix": ("conv1_2_3d", False, False, True, False),
    "cuda_storages": ("conv1_2_3d", False, False, False, True),
    "legacy_cuda_storages": ("conv1_2_3d", True, False, False, True),
    # What the paper's released files are: PyTorch 1.0 (legacy), main.py's
    # checkpoint dict of a DataParallel model trained on GPUs.
    "released_file": ("conv1_2_3d", True, True, True, True),
    "op_conv3d": ("conv3d", False, True, False, False),
    "op_conv2d": ("conv2d", False, True, False, False),
    "op_p3d": ("p3d", True, True, True, False),
    "op_convst": ("convst", True, True, False, False),
    "op_conv1_2d": ("conv1_2d", False, False, True, True),
}


def write_form(tmp_path, form):
    op, legacy, ckpt, prefix, cuda = FORMS[form]
    net = make_net(op, seed=len(form))
    sd = net.state_dict()  # an OrderedDict
    assert isinstance(sd, collections.OrderedDict)
    if prefix:
        sd = collections.OrderedDict(("module." + k, v) for k, v in sd.items())
    obj = sd
    if ckpt:
        obj = {"epoch": 7, "arch": "I3D", "state_dict": sd, "best_prec1": torch.tensor(41.5)}
    path = tmp_path / ("paper_%s.pth.tar" % form)
    save(obj, path, legacy=legacy, cuda=cuda)
    if cuda:  # as on a machine without CUDA: PyTorch itself needs map_location
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path)
    assert zipfile.is_zipfile(path) != legacy
    write_reference(net, tmp_path / "io.pt")
    return path, tmp_path / "io.pt"


@pytest.mark.parametrize("form", list(FORMS))
def test_import_reproduces_pytorch(cli, tmp_path, form):
    path, ref = write_form(tmp_path, form)
    out = tmp_path / "imported.pt"
    r = cli("import", path, "--out", out, "--check", ref)
    assert "max relative difference" in r.stdout, r.stdout
    diff = float(r.stdout.split("max relative difference")[1].split()[0])
    assert diff < 1e-4, r.stdout
    assert out.exists()


def test_import_derives_a_paper_search_super_network(cli, tmp_path):
    """The paper's cost-priority super-network (op code convst with
    search=True): imported, derived as cakes derives (per layer the C_out
    channels of largest |gamma|), the kept channels inherited. Its outputs are
    the super-network's with the dropped channels' norm outputs zeroed."""
    net = make_net("super_conv1_2_3d", seed=3)
    torch.save({"epoch": 3, "arch": "I3D", "state_dict": net.state_dict(), "best_prec1": 20.0},
               tmp_path / "super.pth.tar", _use_new_zipfile_serialization=False)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ConvT):
                bn = m.out[0]
                planes = bn.weight.numel() // 3
                dropped = bn.weight.abs().argsort(descending=True)[planes:]
                bn.weight[dropped] = 0
                bn.bias[dropped] = 0
    write_reference(net, tmp_path / "io.pt")
    r = cli("import", tmp_path / "super.pth.tar", "--out", tmp_path / "derived.pt", "--check", tmp_path / "io.pt")
    assert "the paper's cost-priority search super-network" in r.stdout and "op cakes" in r.stdout, r.stdout
    diff = float(r.stdout.split("max relative difference")[1].split()[0])
    assert diff < 1e-4, r.stdout
    # A conv3 reading neither all groups nor one group's width is refused in
    # one line.
    sd = make_net("super_convst").state_dict()
    sd["base_model.layer2.1.conv3.weight"] = sd["base_model.layer2.1.conv3.weight"][:, :5]
    torch.save(sd, tmp_path / "bad.pt")
    r = cli("import", tmp_path / "bad.pt", "--out", tmp_path / "bad_out.pt", check=False)
    assert r.returncode == 1 and "layer2.1's conv3 reads 5 channels, neither its 32" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def derive_kept(net):
    """The paper's pruneBN for each performance-priority block: the C_out
    channels of largest |gamma| (random norms: no ties), in ascending order,
    which its sub-network computes."""
    kept = []
    for m in net.modules():
        if isinstance(m, ConvT) and hasattr(m, "norm"):
            planes = m.norm.weight.numel() // len(m.convs)
            m.keep = m.norm.weight.abs().argsort(descending=True)[:planes].sort().values
            kept.append((planes, m.keep))
    return kept


def test_import_derives_a_paper_performance_priority_super_network(cli, tmp_path):
    """The paper's performance-priority super-network (op code
    conv1_2_3d_dropout with search=True: convT.norm over every group at full
    width, conv3 reading C_out channels, the kept ones by position), as main.py
    saves it: imported, derived as cakes derives (per layer the C_out channels
    of largest |gamma|, as the paper's pruneBN), the kept channels inherited
    and conv3 as it is. Its outputs are the paper's sub-network's for those
    channels."""
    net = make_net("superp_conv1_2_3d", seed=4)
    sd = collections.OrderedDict(("module." + k, v) for k, v in net.state_dict().items())
    save({"epoch": 139, "arch": "I3D", "state_dict": sd, "best_prec1": 30.0}, tmp_path / "p.pth.tar",
         legacy=True, cuda=True)
    kept = derive_kept(net)
    write_reference(net, tmp_path / "io.pt")
    r = cli("import", tmp_path / "p.pth.tar", "--out", tmp_path / "derived.pt", "--check", tmp_path / "io.pt")
    assert "the paper's performance-priority search super-network" in r.stdout, r.stdout
    assert "op cakes" in r.stdout, r.stdout
    diff = float(r.stdout.split("max relative difference")[1].split()[0])
    assert diff < 1e-4, r.stdout
    # The configuration: per block and candidate the kept channels' count.
    derived = read_checkpoint(tmp_path / "derived.pt")
    names = ["layer%d.%d" % (s + 1, b) for s, n in enumerate(BLOCKS) for b in range(n)]
    for name, (planes, keep) in zip(names, kept):
        for i, k in enumerate(CODES["conv1_2_3d"]):
            count = int(((keep >= i * planes) & (keep < (i + 1) * planes)).sum())
            w = derived.get(name + ".conv2.weight_" + k)
            assert (0 if w is None else w.shape[0]) == count, (name, k)
    # Another class count: the classifier alone re-initialised.
    r = cli("import", tmp_path / "p.pth.tar", "--out", tmp_path / "d2.pt", "--classes", 3)
    assert "classifier re-initialised for 3 classes (the file has 5)" in r.stdout, r.stdout


def test_import_refuses_overwrite_and_bad_files(cli, tmp_path):
    path, ref = write_form(tmp_path, "zip_dict")
    out = tmp_path / "imported.pt"
    cli("import", path, "--out", out)
    r = cli("import", path, "--out", out, check=False)
    assert r.returncode != 0 and "--force" in r.stderr
    cli("import", path, "--out", out, "--force")
    # Truncated, corrupt and foreign files: one line, non-zero, no output.
    data = path.read_bytes()
    legacy, _ = write_form(tmp_path, "legacy")
    ldata = legacy.read_bytes()
    cases = {
        "truncated_zip": data[: len(data) // 2],
        "truncated_legacy": ldata[: len(ldata) - 100],
        "legacy_cut_in_pickle": ldata[:300],
        "garbage": b"\x80\x02hello world" * 10,
        "empty": b"",
        "text": b"not a checkpoint\n",
    }
    for name, content in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        target = tmp_path / (name + ".out")
        r = cli("import", bad, "--out", target, check=False)
        assert r.returncode == 1, (name, r.returncode, r.stderr)
        assert r.stderr.count("\n") == 1 and "error" in r.stderr, (name, r.stderr)
        assert not target.exists()
    # A state dict that is not the paper's layout.
    torch.save({"conv1.weight": torch.zeros(2, 3, 3, 3)}, tmp_path / "tv.pt")
    r = cli("import", tmp_path / "tv.pt", "--out", tmp_path / "x.pt", check=False)
    assert r.returncode == 1 and "neither a cakes checkpoint" in r.stderr, r.stderr
    # A key of the file that fits nothing.
    sd = make_net("conv3d").state_dict()
    sd["base_model.extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pt")
    r = cli("import", tmp_path / "extra.pt", "--out", tmp_path / "y.pt", check=False)
    assert r.returncode == 1 and "base_model.extra.weight" in r.stderr, r.stderr
    # A reference that does not match is reported and fails.
    other = make_net("conv1_2_3d", seed=99)
    write_reference(other, tmp_path / "wrong.pt")
    r = cli("import", path, "--out", tmp_path / "z.pt", "--check", tmp_path / "wrong.pt", check=False)
    assert r.returncode == 1 and "relative difference" in r.stderr, r.stderr


# -- --init on cakes train and cakes search ----------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A tiny motion-direction data set (4 classes) in the TRN layout."""
    import subprocess
    out = tmp_path_factory.mktemp("synth") / "synth"
    cli = os.path.abspath(os.environ.get("CAKES_CLI", "build/cakes"))
    subprocess.run([cli, "synth", "--out", str(out), "--videos", "16", "--frames", "8", "--size", "32",
                    "--format", "both"], check=True, capture_output=True)
    return out


def data_flags(synth, frames=4, size=32):
    return ["--frames-list", synth / "train.txt", "--categories", synth / "category.txt",
            "--frames", frames, "--size", size]


def read_checkpoint(path):
    """A cakes checkpoint's tensors by name (it is a TorchScript archive)."""
    m = torch.jit.load(str(path))
    out = {k[len("model."):]: v for k, v in m.named_parameters() if k.startswith("model.")}
    out.update({k[len("model."):]: v for k, v in m.named_buffers() if k.startswith("model.")})
    return out


def test_train_init_from_paper_file(cli, tmp_path, synth):
    path, ref = write_form(tmp_path, "released_file")  # 5 classes; the data have 4
    r = cli("train", "--init", path, "--init-check", ref, *data_flags(synth),
            "--epochs", 1, "--batch", 8, "--out-dir", tmp_path / "run")
    assert "the paper's layout, legacy format, checkpoint dict, module. prefix" in r.stdout, r.stdout
    assert "max relative difference" in r.stdout
    assert "classifier re-initialised for 4 classes (the file has 5)" in r.stdout, r.stdout
    sd = read_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert sd["fc.weight"].shape == (4, WIDTH * 32)
    # The network of a file is the file's: other network flags are refused.
    r = cli("train", "--init", path, "--net", "i3d_resnet18", *data_flags(synth),
            "--out-dir", tmp_path / "run2", check=False)
    assert r.returncode == 1 and "holds another network" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_train_init_fine_tunes_a_cakes_checkpoint(cli, tmp_path, synth):
    path, ref = write_form(tmp_path, "zip_dict")
    cli("import", path, "--out", tmp_path / "c.pt", "--classes", 7)  # classifier re-initialised
    assert read_checkpoint(tmp_path / "c.pt")["fc.weight"].shape == (7, WIDTH * 32)
    cli("import", path, "--out", tmp_path / "c5.pt")
    # The imported checkpoint is a starting point like the file itself.
    r = cli("train", "--init", tmp_path / "c5.pt", "--init-check", ref, *data_flags(synth),
            "--epochs", 1, "--batch", 8, "--out-dir", tmp_path / "run")
    assert "cakes checkpoint" in r.stdout and "max relative difference" in r.stdout, r.stdout
    assert "classifier re-initialised for 4 classes" in r.stdout


def inflated(w2d, kernel):
    """docs/CAKES.md §5, written out for the test."""
    kd, kh, kw = kernel
    if kernel == (3, 3, 3):
        return w2d.unsqueeze(2).repeat(1, 1, 3, 1, 1) / 3
    if kernel == (1, 3, 3):
        return w2d.unsqueeze(2)
    if kernel == (3, 1, 1):
        return w2d.sum((2, 3))[:, :, None, None, None].repeat(1, 1, 3, 1, 1) / 3
    raise AssertionError(kernel)


@pytest.fixture(scope="module")
def torchvision_files(tmp_path_factory):
    import torchvision
    d = tmp_path_factory.mktemp("tv")
    torch.manual_seed(0)
    for depth in (18, 50):
        net = getattr(torchvision.models, "resnet%d" % depth)()
        with torch.no_grad():  # non-trivial norms
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.5, 1.5)
                    m.running_mean.uniform_(-0.2, 0.2)
        torch.save(net.state_dict(), d / ("resnet%d.pt" % depth))
    return d


def test_inflate_resnet18_into_3d_and_cakes(cli, tmp_path, torchvision_files):
    tv = torch.load(torchvision_files / "resnet18.pt")
    cli("import", torchvision_files / "resnet18.pt", "--net", "i3d_resnet18", "--op", "conv3d",
        "--classes", 4, "--out", tmp_path / "3d.pt")
    sd = read_checkpoint(tmp_path / "3d.pt")
    torch.testing.assert_close(sd["conv1.weight_1x7x7"], tv["conv1.weight"].unsqueeze(2))
    torch.testing.assert_close(sd["layer2.1.conv2.weight_3x3x3"], inflated(tv["layer2.1.conv2.weight"], (3, 3, 3)))
    torch.testing.assert_close(sd["layer3.0.downsample.weight_1x1x1"], tv["layer3.0.downsample.0.weight"].unsqueeze(2))
    torch.testing.assert_close(sd["layer3.1.conv1.bn.running_mean"], tv["layer3.1.bn1.running_mean"])
    assert sd["fc.weight"].shape == (4, 512)
    # CAKES (the even split 3x3x3, 1x3x3, 3x1x1): channel j of a group takes
    # the 2D kernel of its output channel.
    cli("import", torchvision_files / "resnet18.pt", "--net", "i3d_resnet18", "--op", "cakes",
        "--classes", 4, "--out", tmp_path / "cakes.pt")
    sd = read_checkpoint(tmp_path / "cakes.pt")
    w = tv["layer2.1.conv2.weight"]  # 128 channels: 43, 43, 42
    torch.testing.assert_close(sd["layer2.1.conv2.weight_3x3x3"], inflated(w[:43], (3, 3, 3)))
    torch.testing.assert_close(sd["layer2.1.conv2.weight_1x3x3"], inflated(w[43:86], (1, 3, 3)))
    torch.testing.assert_close(sd["layer2.1.conv2.weight_3x1x1"], inflated(w[86:], (3, 1, 1)))
    # P3D has two convolution stages, which a 2D ResNet has no counterpart for.
    r = cli("import", torchvision_files / "resnet18.pt", "--net", "i3d_resnet18", "--op", "p3d",
            "--out", tmp_path / "p3d.pt", check=False)
    assert r.returncode == 1 and "convolution stages" in r.stderr, r.stderr
    assert not (tmp_path / "p3d.pt").exists()
    # Another depth: the missing key.
    r = cli("import", torchvision_files / "resnet18.pt", "--net", "i3d_resnet50", "--op", "conv3d",
            "--out", tmp_path / "x.pt", check=False)
    assert r.returncode == 1 and "has no key 'layer1.0.conv3.weight'" in r.stderr, r.stderr
    # Another width: the key and both shapes.
    r = cli("import", torchvision_files / "resnet18.pt", "--net", "i3d_resnet18", "--width", 32,
            "--out", tmp_path / "x.pt", check=False)
    assert r.returncode == 1 and "conv1.weight' has shape [64, 3, 7, 7]" in r.stderr, r.stderr


def test_inflate_resnet50_into_a_published_configuration(cli, tmp_path, torchvision_files):
    tv = torch.load(torchvision_files / "resnet50.pt")
    cli("import", torchvision_files / "resnet50.pt", "--net", "i3d_resnet50", "--preset", "CAKES123D_P",
        "--classes", 174, "--out", tmp_path / "c.pt")
    sd = read_checkpoint(tmp_path / "c.pt")
    w = tv["layer1.0.conv2.weight"]
    start = 0
    for k in ("3x3x3", "1x3x3", "3x1x1"):
        name = "layer1.0.conv2.weight_" + k
        if name in sd:
            c = sd[name].shape[0]
            torch.testing.assert_close(sd[name], inflated(w[start:start + c], _kernel(k)))
            start += c
    assert start == 64
    torch.testing.assert_close(sd["layer4.2.conv3.weight_1x1x1"], tv["layer4.2.conv3.weight"].unsqueeze(2))
    torch.testing.assert_close(sd["layer1.0.conv2.bn.running_var"], tv["layer1.0.bn2.running_var"])


def test_search_init_inflates_into_the_super_network(cli, tmp_path, torchvision_files, synth):
    tv = torch.load(torchvision_files / "resnet18.pt")
    # lr 0, no weight decay, no L1: the convolution weights stay as inflated.
    r = cli("search", "--init", torchvision_files / "resnet18.pt", "--net", "i3d_resnet18",
            "--candidates", "3x3x3,1x3x3,3x1x1", "--mode", "C", "--sparsity", 0, "--lr", 0,
            "--weight-decay", 0, *data_flags(synth), "--epochs", 1, "--batch", 8,
            "--out-dir", tmp_path / "s")
    assert "inflated into the super-network" in r.stdout, r.stdout
    sd = read_checkpoint(tmp_path / "s" / "search.ckpt")
    w = tv["layer1.0.conv1.weight"]
    for k in ("3x3x3", "1x3x3", "3x1x1"):
        torch.testing.assert_close(sd["layer1.0.conv1.weight_" + k], inflated(w, _kernel(k)))
    # The reader (layer1.0.conv2, searched too) reads all 3 x 64 channels: the
    # 2D input weights repeated per candidate.
    w = tv["layer1.0.conv2.weight"]
    torch.testing.assert_close(sd["layer1.0.conv2.weight_1x3x3"], inflated(w, (1, 3, 3)).repeat(1, 3, 1, 1, 1))
    # The norm: the 2D norm repeated per candidate.
    torch.testing.assert_close(sd["layer1.0.conv1.bn.bias"], tv["layer1.0.bn1.bias"].repeat(3))
    # The configuration it writes names its network and width: info needs no --net.
    r = cli("info", "--config", tmp_path / "s" / "config.json", "--frames", 4, "--size", 32, "--classes", 4)
    assert r.stdout.startswith("i3d_resnet18, op cakes"), r.stdout
    r = cli("info", "--config", tmp_path / "s" / "config.json", "--width", 32, check=False)
    assert r.returncode == 1 and "--width 32 differs from the width 64" in r.stderr, r.stderr
    # --init of a search checkpoint: the derived network, weights inherited.
    r = cli("train", "--init", tmp_path / "s" / "search.ckpt", *data_flags(synth), "--epochs", 1,
            "--batch", 8, "--out-dir", tmp_path / "ft")
    assert "search checkpoint: the derived network, weights inherited" in r.stdout, r.stdout


def test_search_init_from_super_networks_and_a_3d_network(cli, tmp_path, synth):
    """search --init takes the paper's super-network (here performance
    priority: its conv3 repeated per candidate), a cakes search checkpoint,
    and a cakes conv3d checkpoint (every candidate the 3x3x3 kernel shrunk
    onto it); lr 0 and no weight decay keep what it loaded."""
    frozen = ["--lr", 0, "--weight-decay", 0, "--sparsity", 0, "--epochs", 1, "--batch", 8]
    net = make_net("superp_conv1_2_3d", seed=5)
    paper = net.state_dict()
    save({"epoch": 1, "arch": "I3D", "state_dict": paper}, tmp_path / "p.pth.tar", legacy=True)
    cands = ",".join(CODES["conv1_2_3d"])
    r = cli("search", "--init", tmp_path / "p.pth.tar", "--net", "i3d_resnet50", "--width", WIDTH,
            "--candidates", cands, "--mode", "P", *frozen, *data_flags(synth), "--out-dir", tmp_path / "s1")
    assert "the paper's performance-priority search super-network): loaded into the super-network" in r.stdout, r.stdout
    assert "classifier re-initialised for 4 classes (the file has 5)" in r.stdout, r.stdout
    sd = read_checkpoint(tmp_path / "s1" / "search.ckpt")
    for i, k in enumerate(CODES["conv1_2_3d"]):
        torch.testing.assert_close(sd["layer2.1.conv2.weight_" + k], paper["base_model.layer2.1.convT.convs.%d.0.weight" % i])
    torch.testing.assert_close(sd["layer2.1.conv2.bn.weight"], paper["base_model.layer2.1.convT.norm.weight"])
    torch.testing.assert_close(sd["layer2.1.conv3.weight_1x1x1"], paper["base_model.layer2.1.conv3.weight"].repeat(1, 3, 1, 1, 1))
    # Its search checkpoint starts another search (C mode now).
    r = cli("search", "--init", tmp_path / "s1" / "search.ckpt", "--net", "i3d_resnet50", "--width", WIDTH,
            "--candidates", cands, "--mode", "C", *frozen, *data_flags(synth), "--out-dir", tmp_path / "s2")
    assert "(cakes search checkpoint): loaded into the super-network" in r.stdout, r.stdout
    torch.testing.assert_close(read_checkpoint(tmp_path / "s2" / "search.ckpt")["layer2.1.conv2.weight_1x3x3"],
                               sd["layer2.1.conv2.weight_1x3x3"])
    # Other candidates: one line naming the difference.
    r = cli("search", "--init", tmp_path / "s1" / "search.ckpt", "--net", "i3d_resnet50", "--width", WIDTH,
            "--candidates", "3x3x3,1x3x3", "--mode", "C", *frozen, *data_flags(synth), "--out-dir", tmp_path / "s3",
            check=False)
    assert r.returncode == 1 and "holds another network than the search (candidates" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1

    # A trained 3D network: every candidate its kernel shrunk onto it.
    cli("train", "--net", "i3d_resnet18", "--width", WIDTH, "--op", "conv3d", *data_flags(synth), "--epochs", 1,
        "--batch", 8, "--out-dir", tmp_path / "r3d")
    w3d = read_checkpoint(tmp_path / "r3d" / "checkpoint.pt")
    r = cli("search", "--init", tmp_path / "r3d" / "checkpoint.pt", "--net", "i3d_resnet18", "--width", WIDTH,
            "--candidates", "3x3x3,1x3x3,3x1x1", "--mode", "C", *frozen, *data_flags(synth),
            "--out-dir", tmp_path / "s4")
    assert "each candidate the 3x3x3 kernel shrunk onto it" in r.stdout, r.stdout
    sd = read_checkpoint(tmp_path / "s4" / "search.ckpt")
    w = w3d["layer1.0.conv1.weight_3x3x3"]
    torch.testing.assert_close(sd["layer1.0.conv1.weight_3x3x3"], w)
    torch.testing.assert_close(sd["layer1.0.conv1.weight_1x3x3"], w.sum(2, keepdim=True))
    torch.testing.assert_close(sd["layer1.0.conv1.weight_3x1x1"], w.sum((3, 4), keepdim=True))
    torch.testing.assert_close(sd["layer1.0.conv1.bn.bias"], w3d["layer1.0.conv1.bn.bias"].repeat(3))
    # layer1.0.conv2, searched too, reads conv1's 3 x 8 channels.
    w = w3d["layer1.0.conv2.weight_3x3x3"]
    torch.testing.assert_close(sd["layer1.0.conv2.weight_1x3x3"], w.sum(2, keepdim=True).repeat(1, 3, 1, 1, 1))
    torch.testing.assert_close(sd["fc.weight"], w3d["fc.weight"])
    # A 2D network has no taps for a 3x3x3 candidate: refused in one line.
    cli("train", "--net", "i3d_resnet18", "--width", WIDTH, "--op", "conv2d", *data_flags(synth), "--epochs", 1,
        "--batch", 8, "--out-dir", tmp_path / "r2d")
    r = cli("search", "--init", tmp_path / "r2d" / "checkpoint.pt", "--net", "i3d_resnet18", "--width", WIDTH,
            "--candidates", "3x3x3,1x3x3", "--mode", "C", *data_flags(synth), "--out-dir", tmp_path / "s5",
            check=False)
    assert r.returncode == 1 and "is not what search --init takes" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


# -- self-describing checkpoints ----------------------------------------------


def test_eval_infer_info_bench_from_the_checkpoint_alone(cli, tmp_path, synth):
    run = tmp_path / "run"
    cli("train", "--net", "i3d_resnet18", "--width", 8, "--op", "conv3d", *data_flags(synth),
        "--frames-val-list", synth / "val.txt", "--flip-swaps", "0:1", "--epochs", 2, "--batch", 8,
        "--lr", 0.05, "--out-dir", run)
    logged = [json.loads(line) for line in open(run / "log.jsonl")]
    val = [e["val_top1"] for e in logged if "val_top1" in e][-1]
    ckpt = run / "checkpoint.pt"
    # No --net, --width, --op, --frames or --size: the checkpoint records them.
    r = cli("eval", "--checkpoint", ckpt, "--frames-list", synth / "train.txt",
            "--frames-val-list", synth / "val.txt", "--categories", synth / "category.txt", "--json")
    assert abs(json.loads(r.stdout)["top1"] - val) < 1e-9, (r.stdout, val)
    # Another crop size than the network was trained at is refused.
    r = cli("eval", "--checkpoint", ckpt, "--frames-list", synth / "train.txt",
            "--frames-val-list", synth / "val.txt", "--categories", synth / "category.txt",
            "--size", 224, check=False)
    assert r.returncode == 1 and "--size 224 differs from the 32" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    # Another network is refused with the difference.
    r = cli("eval", "--checkpoint", ckpt, "--net", "i3d_resnet18", "--width", 16, "--frames-list",
            synth / "train.txt", "--frames-val-list", synth / "val.txt", "--categories",
            synth / "category.txt", check=False)
    assert r.returncode == 1 and "width 8 vs 16" in r.stderr, r.stderr
    # infer: class names, frames and size from the checkpoint.
    video = sorted((synth / "videos").glob("val_*.mp4"))[0]
    r = cli("infer", "--checkpoint", ckpt, "--input", video)
    names = [l.strip() for l in open(synth / "category.txt")]
    assert any(n in r.stdout for n in names), r.stdout
    r = cli("infer", "--checkpoint", ckpt, "--input", video, "--size", 64, check=False)
    assert r.returncode == 1 and "--size 64 differs" in r.stderr, r.stderr
    # info and bench model.
    r = cli("info", "--checkpoint", ckpt)
    assert r.stdout.startswith("i3d_resnet18, op conv3d, input 1x3x4x32x32"), r.stdout
    r = cli("bench", "model", "--checkpoint", ckpt, "--warmup", 0, "--repeats", 1, "--threads", 2)
    assert "i3d_resnet18" in r.stdout or "conv3d" in r.stdout, r.stdout
