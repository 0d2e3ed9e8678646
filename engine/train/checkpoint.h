#pragma once
// Checkpoints: a directory with model.pt (named parameters and buffers), optimizer.pt and
// state.json, written next to the target and renamed into place, so a checkpoint is either whole
// or absent. checkpoints/latest names the newest good one.
#include <string>

#include <nlohmann/json.hpp>

namespace prefengine {

class Model;
class FlatOptimizer;

void save_checkpoint(const std::string& directory, const Model& model, const FlatOptimizer* optimizer,
                     const nlohmann::json& state);
// Loads model.pt into `model` (names and shapes must match; the message names the tensor).
void load_model_weights(const std::string& directory, Model& model);
// Copies every parameter and buffer of `from` into `to` (same plugin, same options).
void copy_weights(const Model& from, Model& to);

}  // namespace prefengine
