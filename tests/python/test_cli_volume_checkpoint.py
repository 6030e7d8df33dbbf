"""Self-describing checkpoints for volumes (docs/WEIGHTS.md): a network
trained on NIfTI pairs (written here with nibabel) is evaluated and applied
from `--checkpoint` alone, with no network, window or intensity flag, and
gives what the same commands give with every flag spelled out; a flag that
contradicts the checkpoint is one line and a non-zero exit.
"""
import json

import nibabel as nib
import numpy as np
import pytest

NET = ["--net", "res_encoder_decoder", "--width", 4, "--op", "conv3d"]
PATCH = [32, 32, 16]


@pytest.fixture(scope="module")
def trained(cli, tmp_path_factory):
    """Pairs imagesTr/case_i.nii.gz + labelsTr/case_i.nii.gz (bright voxels
    are class 1), and a network trained on them with z-scored intensities over
    all voxels."""
    root = tmp_path_factory.mktemp("vol")
    data = root / "pairs"
    (data / "imagesTr").mkdir(parents=True)
    (data / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    for i in range(4):
        labels = (rng.random((34, 32, 18)) > 0.7).astype(np.uint8)
        image = (labels * 100 + 20 + rng.normal(0, 5, labels.shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(image, affine), data / "imagesTr" / f"case_{i}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), data / "labelsTr" / f"case_{i}.nii.gz")
    run = root / "run"
    cli("train", *NET, "--msd", data, "--num-classes", 2, "--patch", *PATCH, "--zscore", "all",
        "--epochs", 1, "--batch", 2, "--lr", 0.01, "--optimizer", "adamw", "--workers", 0,
        "--threads", 2, "--out-dir", run)
    return data, run / "checkpoint.pt", root


def test_eval_from_the_checkpoint_alone(cli, trained):
    data, ckpt, _ = trained
    alone = json.loads(cli("eval", "--checkpoint", ckpt, "--msd", data, "--json").stdout)
    spelled = json.loads(cli("eval", "--checkpoint", ckpt, "--msd", data, *NET, "--num-classes", 2,
                             "--window", *PATCH, "--zscore", "all", "--json").stdout)
    assert alone["dice"] and alone == spelled, (alone, spelled)
    # Intensities other than the network was trained with: refused.
    r = cli("eval", "--checkpoint", ckpt, "--msd", data, "--zscore", "nonzero", check=False)
    assert r.returncode == 1 and '--zscore "nonzero" differs from the "all"' in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    r = cli("eval", "--checkpoint", ckpt, "--msd", data, "--ct-window", -100, 100, check=False)
    assert r.returncode == 1 and "--ct-window [-100.0,100.0] differs from the []" in r.stderr, r.stderr
    # Another network: refused with the difference.
    r = cli("eval", "--checkpoint", ckpt, "--msd", data, "--net", "res_encoder_decoder", "--width", 8,
            check=False)
    assert r.returncode == 1 and "width 4 vs 8" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1


def test_infer_from_the_checkpoint_alone(cli, trained):
    data, ckpt, root = trained
    image = data / "imagesTr" / "case_0.nii.gz"
    out = root / "alone.nii.gz"
    r = cli("infer", "--checkpoint", ckpt, "--input", image, "--output", out)
    assert "affine of the input" in r.stdout, r.stdout
    spelled = root / "spelled.nii.gz"
    cli("infer", "--checkpoint", ckpt, "--input", image, "--output", spelled, *NET, "--num-classes", 2,
        "--window", *PATCH, "--modality", "MRI")
    a, b = nib.load(out), nib.load(spelled)
    assert a.shape == nib.load(image).shape
    np.testing.assert_array_equal(a.affine, nib.load(image).affine)
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    assert set(np.unique(np.asarray(a.dataobj))) <= {0, 1}
    # A modality the network was not trained on: refused, nothing written.
    r = cli("infer", "--checkpoint", ckpt, "--input", image, "--output", root / "ct.nii.gz",
            "--modality", "CT", check=False)
    assert r.returncode == 1 and '--modality "CT" differs from the ["MRI"]' in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    assert not (root / "ct.nii.gz").exists()
    r = cli("infer", "--checkpoint", ckpt, "--input", image, "--output", root / "w.nii.gz",
            "--net", "res_encoder_decoder", "--width", 8, check=False)
    assert r.returncode == 1 and "width 4 vs 8" in r.stderr, r.stderr
