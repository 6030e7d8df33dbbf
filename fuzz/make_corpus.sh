#!/bin/bash
# Seeds every fuzz target's corpus, BUILD/corpus/<target>/, with valid files:
# samples Debian ships (python3-nibabel, python3-dipy, python3-imageio,
# insighttoolkit5-examples), files FFmpeg and nibabel write here, files the
# project writes (BUILD/make_seeds) and the project's own configurations.
# Seeds are added to what earlier runs grew; nothing is removed.
set -euo pipefail
B=$1
C=$B/corpus
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
TARGETS="nifti jpeg video msd_json config network_config trn_list ssv2 zip checkpoint torch_file"
for t in $TARGETS; do
  mkdir -p "$C/$t"
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Small samples only: libFuzzer mutates within the largest seed's size.
small() { find "$@" -maxdepth 1 -type f -size -100k 2>/dev/null || true; }

# --- NIfTI: Debian's samples, nibabel-written variants, cakes's own writer.
NIB=/usr/lib/python3/dist-packages/nibabel/tests/data
for f in $(small "$NIB" /usr/lib/python3/dist-packages/dipy/data/files \
           /usr/share/doc/libnifti2-2/examples | grep -E '\.nii(\.gz)?$'); do
  cp "$f" "$C/nifti/"
done
/usr/bin/python3 - "$C/nifti" <<'PY'
import sys, numpy as np, nibabel as nib
out = sys.argv[1]
d = (np.arange(4 * 3 * 2) % 7).reshape(4, 3, 2)
aff = np.diag([2.0, 3.0, 4.0, 1.0])
for dt in (np.uint8, np.int16, np.float32, np.float64, np.int64):
    name = np.dtype(dt).name
    nib.save(nib.Nifti1Image(d.astype(dt), aff, dtype=dt), f"{out}/n1_{name}.nii")
    nib.save(nib.Nifti2Image(d.astype(dt), aff, dtype=dt), f"{out}/n2_{name}.nii.gz")
be = nib.Nifti1Image(d.astype(">i2"), aff)
nib.save(be, f"{out}/n1_bigendian.nii")
sc = nib.Nifti1Image(d.astype(np.int16), aff)
sc.header.set_slope_inter(2.5, -3.0)
nib.save(sc, f"{out}/n1_scaled.nii")
nib.save(nib.Nifti1Image(np.ones((2, 2, 2, 3), np.int16), aff), f"{out}/n1_4d.nii.gz")
PY

# --- Video: imageio's short mp4, and tiny clips FFmpeg writes in the
# containers and codecs Debian's FFmpeg has.
cp /usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4 "$C/video/"
src="testsrc=size=32x24:rate=10"
ff() { ffmpeg -v error -y -f lavfi -i "$src" -frames:v 12 "$@" </dev/null; }
ff -c:v libx264 -pix_fmt yuv420p -g 4 "$C/video/x264.mp4"
ff -c:v libx264 -pix_fmt yuv420p -bf 2 -movflags +faststart "$C/video/x264_bframes.mov"
ff -c:v mpeg4 "$C/video/mpeg4.avi"
ff -c:v mjpeg "$C/video/mjpeg.avi"
ff -c:v libvpx "$C/video/vp8.webm"
ff -c:v libvpx-vp9 "$C/video/vp9.mkv"
ff "$C/video/anim.gif"
ff -c:v mpeg2video -f mpegts "$C/video/mpeg2.ts"

# --- JPEG: layouts TurboJPEG writes (4:4:4, 4:2:2, 4:2:0, grey,
# progressive), FFmpeg's MJPEG frames, and two Debian JPEGs.
mkdir -p "$TMP/jpeg" "$TMP/checkpoint" "$TMP/nifti"
"$B/make_seeds" "$TMP"
cp "$TMP"/jpeg/*.jpg "$C/jpeg/"
cp "$TMP"/nifti/* "$C/nifti/"
ffmpeg -v error -y -f lavfi -i "$src" -frames:v 1 -pix_fmt yuvj422p "$C/jpeg/ffmpeg_422.jpg" </dev/null
for f in $(small /usr/share/doc/nodejs | grep -E '\.jpe?g$'); do cp "$f" "$C/jpeg/"; done

# --- Checkpoints: as the trainer writes them, for the zip check and for
# LibTorch's reader; a deflated zip (Python's zipfile) for the inflate path.
cp "$TMP"/checkpoint/*.pt "$C/checkpoint/"
cp "$TMP"/checkpoint/*.pt "$C/zip/"
/usr/bin/python3 - "$C/zip/deflated.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", b"x" * 300)
    z.writestr("archive/version", b"3\n")
PY

# --- torch.save files (fuzz_torch_file): both formats, the containers the
# paper's code writes, dtypes, views, cuda-tagged storages, and the paper's
# layout (plain, CAKES, both search super-networks).
/usr/bin/python3 - "$C/torch_file" <<'PY'
import collections, sys, torch
out = sys.argv[1]
BLOCKS = [3, 4, 6, 3]
def save(obj, name, legacy):
    torch.save(obj, f"{out}/{name}_{'legacy' if legacy else 'zip'}.pt",
               _use_new_zipfile_serialization=not legacy)
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
small = collections.OrderedDict([
    ("a", base), ("view", base.t()), ("slice", base[1:, ::2]), ("f64", base.double()),
    ("i64", torch.arange(5)), ("f16", torch.ones(2, dtype=torch.float16)),
    ("b", torch.tensor([True, False])), ("scalar", torch.tensor(2.5)), ("empty", torch.zeros(0, 3))])
for legacy in (False, True):
    save(dict(small), "dict", legacy)
    save({"epoch": 3, "arch": "I3D", "best_prec1": 1.5,
          "state_dict": collections.OrderedDict(("module." + k, v) for k, v in small.items())},
         "checkpoint", legacy)
torch.serialization.register_package(1, lambda s: "cuda:0", lambda s, loc: None)
save({"a": base}, "cuda", False)
save({"a": base}, "cuda", True)
torch.serialization._package_registry[:] = [p for p in torch.serialization._package_registry if p[0] != 1]
# The paper's layout with only the keys paper_network_spec reads (ResNet-50
# block counts), every tensor a view of one storage: small files, fast runs.
store = torch.zeros(4096)
def t(*shape):
    n = 1
    for e in shape:
        n *= e
    return store[:n].view(*shape)
def paper(groups, reads):
    sd = collections.OrderedDict([("base_model.conv1.weight", t(1, 3, 1, 7, 7)),
                                  ("new_fc.weight", t(2, 32))])
    for s, n in enumerate(BLOCKS):
        p = 1 << s
        for b in range(n):
            k = f"base_model.layer{s + 1}.{b}."
            sd[k + "conv1.weight"] = t(p, 4 if s + b == 0 else 4 * p, 1, 1, 1)
            # A derived block splits its p channels; a super-network's
            # groups are p wide each, its conv3 reading them all or p.
            widths = [p] * len(groups) if reads else [p - p // 2, p // 2]
            i = 0
            for (kd, kh, kw), c in zip(groups, widths):
                if c:
                    sd[k + f"convT.convs.{i}.0.weight"] = t(c, p, kd, kh, kw)
                    i += 1
            sd[k + ("convT.norm.weight" if reads == "kept" else "convT.out.0.weight")] = t(sum(widths))
            sd[k + "conv3.weight"] = t(4 * p, sum(widths) if reads == "all" else p, 1, 1, 1)
    return sd
save(paper([(3, 3, 3), (1, 3, 3)], None), "paper_cakes", False)
save(paper([(3, 3, 3), (1, 3, 3), (3, 1, 1)], "all"), "paper_super_c", False)
save(paper([(3, 3, 3), (1, 3, 3)], "kept"), "paper_super_p", True)
sd = paper([(3, 3, 3)], "one")
sd = collections.OrderedDict((k.replace("convT.convs.0.0", "convT.op.0"), v) for k, v in sd.items())
save(sd, "paper_conv3d", True)
PY

# --- JSON configurations: the layer forms of docs/CONFIGS.md, every block
# of the presets, and network files.
printf '%s' '3x3x3:22,1x3x3:21,3x1x1:21' >"$C/config/compact"
printf '%s' '3x3x3:1,1x3x3:2;output_index=2,0,1' >"$C/config/compact_index"
printf '%s' '{"3x3x3":22,"1x3x3":21,"3x1x1":21}' >"$C/config/json"
printf '%s' '{"3x3x3": 1, "1x3x3": 2, "output_index": [2, 0, 1]}' >"$C/config/json_index"
printf '%s' '5x5x5:0,1x1x3:7,3x3x1:1' >"$C/config/compact_other"
for f in "$ROOT"/configs/*.json; do cp "$f" "$C/network_config/"; done
/usr/bin/python3 - "$ROOT/configs" "$C/network_config" <<'PY'
import sys, json, glob, os
src, out = sys.argv[1], sys.argv[2]
for path in glob.glob(os.path.join(src, "*.json")):
    j = json.load(open(path))
    for name, blocks in j.get("presets", {}).items():
        json.dump({"network": j.get("network", ""), "op": "cakes", "blocks": blocks},
                  open(os.path.join(out, name + ".json"), "w"))
json.dump({"network": "i3d_resnet18", "blocks": [{"3x3x3": 1, "1x3x3": 2, "output_index": [2, 0, 1]}]},
          open(os.path.join(out, "with_index.json"), "w"))
PY

# --- MSD dataset.json, in the Decathlon layout.
cat >"$C/msd_json/dataset.json" <<'JSON'
{"name": "BrainT1", "description": "k-means tissue classes", "tensorImageSize": "3D",
 "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "csf", "2": "grey", "3": "white"},
 "numTraining": 2, "numTest": 1,
 "training": [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"},
              {"image": "./imagesTr/b.nii.gz", "label": "./labelsTr/b.nii.gz"}],
 "test": ["./imagesTs/c.nii.gz"]}
JSON
cat >"$C/msd_json/ct.json" <<'JSON'
{"modality": {"0": "CT", "1": "MRI"}, "labels": {"0": "background", "1": "tumour"},
 "training": [{"image": "imagesTr/x.nii.gz", "label": "labelsTr/x.nii.gz"}], "test": []}
JSON

# --- TRN list files (folder frames label; path label) and category files.
printf 'videos/train_00001 16 0\nvideos/train_00002 16 3\nfolder with spaces 12 1\n' >"$C/trn_list/frames.txt"
printf 'videos/val_00001.mp4 2\n/abs/path.webm 6\n' >"$C/trn_list/videos.txt"
printf 'videos/a.mp4 moving_right\nclip 9 moving left\n' >"$C/trn_list/named.txt"
printf 'moving left\nmoving right\nmoving up\nmoving down\n' >"$C/trn_list/category.txt"

# --- Something-Something V2: labels JSON, a NUL byte, a list JSON (the
# layout fuzz_ssv2 splits its input by), and a list alone.
labels='{"Holding something": "0", "Putting something on a surface": "1", "Pushing something from left to right": 2}'
list='[{"id": "78687", "label": "holding potato", "template": "Holding [something]", "placeholders": ["potato"]}, {"id": 42326, "template": "Putting [something] on a surface"}]'
printf '%s\0%s' "$labels" "$list" >"$C/ssv2/labels_and_list"
printf '%s' "$list" >"$C/ssv2/list"

for t in $TARGETS; do
  echo "corpus $t: $(ls "$C/$t" | wc -l) files"
done
