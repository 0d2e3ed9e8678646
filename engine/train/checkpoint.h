#pragma once
// Checkpoints, one schema for every stage kind: a directory with
//   model.pt      named parameters and buffers
//   optimizer.pt  the optimizer's moments and step count (the schedule's position)
//   loss.pt       the loss plugin's state (Loss::state()), when it has one
//   adapter_config.json, adapter_model.safetensors  a model with LoRA adapters (AdapterModel): the
//                 adapters in PEFT's layout, for PEFT and `transformers` (resume reads model.pt)
//   state.json    CheckpointState below, "files" (each file's size and CRC-32C) and "checksum"
//                 (the CRC-32C of state.json's own content without that field)
// built in <target>.tmp (every file fsynced), renamed into place and the folder fsynced, so a
// checkpoint is either whole or absent; reading one verifies every checksum.
// Regular checkpoints live in RUN_DIR/checkpoints/<stage> and checkpoints/latest names the newest;
// a failure's state goes to RUN_DIR/failures/<stage>-step-<N> and never touches them.
#include <cstdint>
#include <stdexcept>
#include <string>

#include <ATen/core/Generator.h>
#include <nlohmann/json.hpp>

namespace prefengine {

class Loss;
class Model;
class FlatOptimizer;

struct CheckpointState {
  static constexpr int kFormat = 3;  // bumped when the fields change (3: files and checksum)
  std::string stage;                 // the stage's name
  std::string kind;                  // its kind (sft, pairwise, ppo, ...)
  int64_t stage_index = 0;           // its position in the experiment
  int64_t step = 0;                  // loop steps done in the stage
  int64_t steps = 0;                 // the stage's total loop steps
  int64_t global_step = 0;           // optimizer steps done in the run
  nlohmann::json sampler;            // BatchSampler::state()
  nlohmann::json generator;          // the default torch generator (generator_state())
  bool scalar_head = false;          // the model had its scalar head (a reward model, ppo's value head)
  std::string failure;               // failure folders: the error; empty for regular checkpoints
  bool resumable = true;             // failure folders: false when the state is mid-step

  bool finished() const { return step >= steps; }
  nlohmann::json to_json() const;
  // Reads and checks every field (types, 0 <= step <= steps, ...); `where` names the file.
  static CheckpointState from_json(const nlohmann::json& json, const std::string& where);
};

// Writes a checkpoint into `directory` (replacing it). `set_latest` repoints the parent's
// `latest` at it (regular checkpoints only).
void save_checkpoint(const std::string& directory, const Model& model, const FlatOptimizer* optimizer,
                     const Loss* loss, const CheckpointState& state, bool set_latest = true);
// A checkpoint file that is missing, unreadable, partial or fails its checksum (the message names
// the file). Resume falls back to an older checkpoint on this error, never on other ones.
struct CorruptCheckpoint : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// state.json of a checkpoint directory, its checksum verified (CorruptCheckpoint) and its fields
// checked (std::invalid_argument naming the file).
CheckpointState read_checkpoint_state(const std::string& directory);
// read_checkpoint_state, and every file state.json lists has its size and checksum (CorruptCheckpoint).
CheckpointState verify_checkpoint(const std::string& directory);
// state.json's content with its "checksum" field (re)computed (also for tests that edit a state).
nlohmann::json seal_checkpoint_state(nlohmann::json state);

// Loads model.pt into `model` (names and shapes must match; the message names the tensor). When
// the checkpoint's model had a scalar head and `model` has none, the head is added first.
void load_model_weights(const std::string& directory, Model& model);
void load_optimizer_state(const std::string& directory, FlatOptimizer& optimizer);
// Hands loss.pt (when the checkpoint has one) to loss.load_state().
void load_loss_state(const std::string& directory, Loss& loss);
// Copies every parameter and buffer of `from` into `to` (same plugin, same options).
void copy_weights(const Model& from, Model& to);

// A CPU generator's state (the default one's when none is given), as a JSON list of bytes, and back.
nlohmann::json generator_state();
nlohmann::json generator_state(at::Generator generator);
void restore_generator_state(const nlohmann::json& state, const std::string& where = "generator");
// Copies CPU generator `from`'s whole state (Mersenne Twister, seed, the cached normal samples) into
// `to`, allocating nothing. Used instead of Generator::clone(), which leaks the copy in LibTorch 1.13
// (CPUGeneratorImpl::clone_impl's result is reclaimed with one reference too many: ~2.6 KB a call).
void copy_cpu_generator(const at::Generator& from, at::Generator& to);

}  // namespace prefengine
