// Self-describing checkpoints on the command line (docs/WEIGHTS.md): the
// "input" section of a checkpoint's metadata (train/checkpoint.h) records
// what the network was trained on, so that eval, infer, info and bench model
// need only --checkpoint.
//
//   video:   {"kind": "video", "frames": 8, "size": 32, "scale": 36,
//             "mean": [...], "std": [...], "flip_swaps": "0:1",
//             "class_names": [...]}
//   volumes: {"kind": "volume", "patch": [D, H, W], "modalities": [...],
//             "ct_window": [lo, hi], "zscore": "nonzero" | "all" | "",
//             "spacing": [...], "class_names": [...]}
#pragma once

#include "data_options.h"

#include "cakes/data/nifti.h"
#include "cakes/models/model.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace cakes::cli {

// The section for a network trained with these options on `data`.
std::string
input_section(const DataOptions& options, const DatasetHandle& data);

// The checkpoint's input section; null when it has none (older checkpoints,
// imports).
nlohmann::json read_input_section(const std::string& checkpoint);

// A value of the input section for a flag of `cmd`: when the flag was not
// given, `value` takes the recorded one; when it was given with another
// value and `must_match`, throws std::invalid_argument (one line) naming
// both. Does nothing when the section lacks `key`.
template <class T>
void take_recorded(
    const nlohmann::json& section,
    const char* key,
    const CLI::App* cmd,
    const char* flag,
    T& value,
    bool must_match);

// Fills the data options of eval (frames, size, scale, patch, volume
// intensity) from the checkpoint: what was not given is taken, frames may
// differ, a different size, scale or intensity setting is an error.
void apply_input_section(
    const nlohmann::json& section, const CLI::App* cmd, DataOptions& options);

// The network input of a whole volume for `cakes infer`, (C, D, H, W):
// normalised as the checkpoint's network was trained (the section's
// modalities, CT window and z-score region) and resampled to its spacing
// when it has one (write the labels with data::write_labels_on_grid_of).
// Without a section every channel is `modality` (CT: the default window,
// else a z-score over non-zero voxels). A --modality given on `cmd` that
// contradicts the recorded modalities, or another channel count, is a
// one-line std::invalid_argument.
at::Tensor volume_input(
    const data::Volume& image,
    const nlohmann::json& section,
    const CLI::App* cmd,
    const std::string& modality);

// The network to evaluate: the checkpoint's own (models::build + weights)
// when no network flag was given, else the flags' network, which must be the
// checkpoint's (train::load_checkpoint_weights). Its class count must be
// `num_classes` (> 0), else a one-line error.
models::Model checkpoint_model(
    const std::string& checkpoint,
    const models::NetworkSpec& from_flags,
    bool net_given,
    int64_t num_classes);

} // namespace cakes::cli
