// Writes seed files the fuzz corpus needs and no Debian package ships: JPEGs
// in every layout TurboJPEG writes, a checkpoint as the trainer writes it
// (torch::serialize, meta/ entries), and NIfTI label volumes as cakes infer
// writes them. Usage: make_seeds OUT_DIR (subfolders jpeg/, checkpoint/,
// nifti/ must exist).
#include "cakes/data/nifti.h"
#include "cakes/train/checkpoint.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>
#include <turbojpeg.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

namespace {

void write_jpeg(
    const std::string& path,
    int w,
    int h,
    int subsamp,
    int quality,
    int flags) {
  at::Tensor rgb = (at::arange(h * w * 3, at::kInt).remainder(251) * 7)
                       .remainder(256)
                       .to(at::kByte);
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(
          tj,
          rgb.data_ptr<uint8_t>(),
          w,
          0,
          h,
          TJPF_RGB,
          &buf,
          &size,
          subsamp,
          quality,
          flags) != 0) {
    std::cerr << path << ": " << tjGetErrorStr2(tj) << "\n";
    std::exit(1);
  }
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(buf), std::streamsize(size));
  tjFree(buf);
  tjDestroy(tj);
}

void write_checkpoint(const std::string& path, bool with_optimizer) {
  // The trainer's own writer, so that the seeds follow the format exactly.
  torch::nn::Linear model(3, 2);
  cakes::train::CheckpointMeta meta;
  meta.epoch = 3;
  meta.step = 42;
  meta.network.network = "i3d_resnet18";
  meta.rng_state = at::zeros({16}, at::kByte);
  torch::optim::SGD sgd(
      model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  if (with_optimizer) { // one step, so that momentum buffers exist
    model->forward(at::ones({1, 3})).sum().backward();
    sgd.step();
  }
  cakes::train::write_checkpoint(
      path, *model, meta, with_optimizer ? &sgd : nullptr);
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds OUT_DIR\n";
    return 2;
  }
  const std::string out = argv[1];
  int n = 0;
  for (int subsamp : {TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_GRAY}) {
    for (int flags : {0, TJFLAG_PROGRESSIVE}) {
      for (auto [w, h] :
           {std::pair{1, 1}, std::pair{17, 9}, std::pair{48, 32}}) {
        const int quality = n % 2 ? 90 : 20;
        write_jpeg(
            out + "/jpeg/seed_" + std::to_string(n++) + ".jpg",
            w,
            h,
            subsamp,
            quality,
            flags);
      }
    }
  }
  write_checkpoint(out + "/checkpoint/trainer.pt", true);
  write_checkpoint(out + "/checkpoint/weights_only.pt", false);
  cakes::data::Volume like;
  like.affine = {2, 0, 0, -10, 0, 3, 0, 5, 0, 0, 4, 1, 0, 0, 0, 1};
  like.spacing = {2, 3, 4};
  at::Tensor labels =
      at::arange(5 * 4 * 3, at::kLong).remainder(4).view({5, 4, 3});
  cakes::data::write_nifti_labels(out + "/nifti/labels.nii", labels, like);
  cakes::data::write_nifti_labels(out + "/nifti/labels.nii.gz", labels, like);
  return 0;
}
