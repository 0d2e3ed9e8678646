#include "engine/train/checkpoint.h"

#include <mutex>
#include <sstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <boost/filesystem.hpp>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "engine/io/durable_file.h"
#include "engine/train/flat_optimizer.h"
#include "prefengine/loss.h"
#include "prefengine/model.h"

namespace prefengine {

namespace fs = boost::filesystem;

namespace {

// "[16, 8]"
std::string shape_text(const at::Tensor& tensor) {
  std::string text = "[";
  for (int64_t d = 0; d < tensor.dim(); ++d) text += (d ? ", " : "") + std::to_string(tensor.size(d));
  return text + "]";
}

}  // namespace

nlohmann::json CheckpointState::to_json() const {
  nlohmann::json j = {{"format", kFormat},   {"stage", stage},   {"kind", kind},
                      {"stage_index", stage_index}, {"step", step}, {"steps", steps},
                      {"global_step", global_step}, {"sampler", sampler}, {"generator", generator},
                      {"scalar_head", scalar_head}};
  if (!failure.empty()) {
    j["failure"] = failure;
    j["resumable"] = resumable;
  }
  return j;
}

CheckpointState CheckpointState::from_json(const nlohmann::json& j, const std::string& where) {
  auto fail = [&](const std::string& key, const std::string& expected) {
    throw std::invalid_argument(where + ": " + key + ": expected " + expected);
  };
  if (!j.is_object()) fail("(top level)", "a JSON object");
  if (!j.contains("format") || !j["format"].is_number_integer()) {
    fail("format", "checkpoint format " + std::to_string(kFormat) +
                       " (a checkpoint written by an older prefengine cannot be resumed)");
  }
  if (j["format"].get<int>() != kFormat) {
    fail("format", std::to_string(kFormat) + ", got " + j["format"].dump());
  }
  auto integer = [&](const char* key, int64_t min) {
    if (!j.contains(key) || !j[key].is_number_integer()) fail(key, "an integer");
    const int64_t v = j[key].get<int64_t>();
    if (v < min) fail(key, "an integer >= " + std::to_string(min) + ", got " + std::to_string(v));
    return v;
  };
  auto text = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) fail(key, "a non-empty string");
    return j[key].get<std::string>();
  };
  CheckpointState s;
  s.stage = text("stage");
  s.kind = text("kind");
  s.stage_index = integer("stage_index", 0);
  s.steps = integer("steps", 1);
  s.step = integer("step", 0);
  if (s.step > s.steps) fail("step", "at most steps (" + std::to_string(s.steps) + "), got " + std::to_string(s.step));
  s.global_step = integer("global_step", s.step);
  if (!j.contains("sampler") || !j["sampler"].is_object()) fail("sampler", "the batch sampler's state");
  s.sampler = j["sampler"];
  if (!j.contains("generator") || !j["generator"].is_array()) fail("generator", "the generator's state (a list of bytes)");
  s.generator = j["generator"];
  if (!j.contains("scalar_head") || !j["scalar_head"].is_boolean()) fail("scalar_head", "true or false");
  s.scalar_head = j["scalar_head"].get<bool>();
  if (j.contains("failure")) {
    s.failure = j["failure"].is_string() ? j["failure"].get<std::string>() : j["failure"].dump();
    s.resumable = j.value("resumable", false);
  }
  return s;
}

namespace {

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

std::string checksum_of(nlohmann::json state) {
  state.erase("checksum");
  return "crc32c:" + crc32c_hex(state.dump());
}

// state.json, parsed and its checksum verified; a missing or corrupted one is CorruptCheckpoint.
nlohmann::json read_state_json(const std::string& directory) {
  const std::string path = directory + "/state.json";
  std::string text;
  try {
    text = read_file_bytes(path);
  } catch (const std::runtime_error& e) {
    throw CorruptCheckpoint(e.what());
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw CorruptCheckpoint(path + ": not valid JSON (the file is corrupted)");
  if (!j.contains("checksum")) {
    CheckpointState::from_json(j, path);  // an older format says so
    throw CorruptCheckpoint(path + ": checksum: missing (the file is corrupted)");
  }
  if (!j["checksum"].is_string() || j["checksum"].get<std::string>() != checksum_of(j)) {
    throw CorruptCheckpoint(path + ": checksum mismatch (the file is corrupted)");
  }
  return j;
}

// The bytes of `name` in a checkpoint, checked against the size and checksum state.json lists.
std::string read_verified(const std::string& directory, const nlohmann::json& state, const std::string& name) {
  const std::string path = directory + "/" + name;
  const auto files = state.find("files");
  if (files == state.end() || !files->is_object() || !files->contains(name) || !(*files)[name].is_object()) {
    throw CorruptCheckpoint(directory + "/state.json: files: no entry for " + name);
  }
  const nlohmann::json& entry = (*files)[name];
  std::string bytes;
  try {
    bytes = read_file_bytes(path);
  } catch (const std::runtime_error& e) {
    throw CorruptCheckpoint(e.what());
  }
  if (entry.value("bytes", int64_t{-1}) != static_cast<int64_t>(bytes.size())) {
    throw CorruptCheckpoint(path + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                            entry.value("bytes", nlohmann::json()).dump() + " (the file is partial or corrupted)");
  }
  if (entry.value("crc32c", std::string()) != crc32c_hex(bytes)) {
    throw CorruptCheckpoint(path + ": checksum mismatch (the file is corrupted)");
  }
  return bytes;
}

}  // namespace

nlohmann::json seal_checkpoint_state(nlohmann::json state) {
  state["checksum"] = checksum_of(state);
  return state;
}

void save_checkpoint(const std::string& directory, const Model& model, const FlatOptimizer* optimizer,
                     const Loss* loss, const CheckpointState& state, bool set_latest) {
  // Built in <target>.tmp, every file fsynced; then the old one is renamed to <target>.old, the
  // new one into place, and the old one removed. A crash at any point leaves a complete copy
  // (the target, .old or .tmp) that resume finds by its checksums.
  const fs::path target(directory);
  const fs::path tmp = target.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  nlohmann::json files = nlohmann::json::object();
  auto write = [&](const std::string& name, const std::string& bytes) {
    write_file_synced((tmp / name).string(), bytes);
    files[name] = {{"bytes", bytes.size()}, {"crc32c", crc32c_hex(bytes)}};
  };
  {
    torch::serialize::OutputArchive archive;
    for (const auto& item : model.named_parameters(/*recurse=*/true)) {
      archive.write(item.key(), item.value().detach().clone());  // a view would save the flat buffer
    }
    for (const auto& item : model.named_buffers(/*recurse=*/true)) {
      archive.write(item.key(), item.value().detach().clone(), /*is_buffer=*/true);
    }
    write("model.pt", archive_bytes(archive));
  }
  // LoRA adapters also in PEFT's layout (adapter_config.json, adapter_model.safetensors), listed
  // and checksummed like the other files; model.pt stays what resume reads.
  if (const auto* adapters = dynamic_cast<const AdapterModel*>(&model); adapters != nullptr && adapters->has_adapters()) {
    for (const std::string& name : adapters->save_adapters(tmp.string())) write(name, read_file_bytes((tmp / name).string()));
  }
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive archive;
    for (const auto& [name, tensor] : optimizer->state()) archive.write(name, tensor);
    write("optimizer.pt", archive_bytes(archive));
  }
  if (loss != nullptr) {
    const NamedTensors loss_state = loss->state();
    if (!loss_state.empty()) {
      torch::serialize::OutputArchive archive;
      for (const auto& [name, tensor] : loss_state) archive.write(name, tensor.detach().clone());
      write("loss.pt", archive_bytes(archive));
    }
  }
  nlohmann::json json = state.to_json();
  json["files"] = files;
  write_file_synced((tmp / "state.json").string(), seal_checkpoint_state(json).dump(2) + "\n");
  sync_path(tmp.string());
  const fs::path old = target.string() + ".old";
  fs::remove_all(old);
  if (fs::exists(target)) rename_durably(target.string(), old.string());
  rename_durably(tmp.string(), target.string());
  fs::remove_all(old);
  if (set_latest) write_file_durably((target.parent_path() / "latest").string(), target.filename().string() + "\n");
}

CheckpointState read_checkpoint_state(const std::string& directory) {
  return CheckpointState::from_json(read_state_json(directory), directory + "/state.json");
}

CheckpointState verify_checkpoint(const std::string& directory) {
  const nlohmann::json j = read_state_json(directory);
  CheckpointState state = CheckpointState::from_json(j, directory + "/state.json");
  if (!j.contains("files") || !j["files"].is_object() || !j["files"].contains("model.pt")) {
    throw CorruptCheckpoint(directory + "/state.json: files: expected the size and checksum of model.pt");
  }
  for (const auto& item : j["files"].items()) read_verified(directory, j, item.key());
  return state;
}

// A truncated or garbage .pt file is an error naming the file, in one line (no LibTorch backtrace).
static void open_archive(torch::serialize::InputArchive& archive, const std::string& bytes, const std::string& path) {
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const std::exception& e) {
    // e.what() keeps LibTorch's backtrace for --log-level debug; the CLI shows error_line() of it.
    throw std::invalid_argument(path + ": not a readable LibTorch archive (truncated or not a checkpoint file?): " +
                                e.what());
  }
}

void load_model_weights(const std::string& directory, Model& model) {
  const std::string path = directory + "/model.pt";
  if (!fs::exists(path)) throw std::invalid_argument(path + ": no such checkpoint file");
  const nlohmann::json state = read_state_json(directory);
  const std::string bytes = read_verified(directory, state, "model.pt");
  if (!model.has_scalar_head() && state.value("scalar_head", false)) model.add_scalar_head();
  torch::serialize::InputArchive archive;
  open_archive(archive, bytes, path);
  at::NoGradGuard no_grad;
  // Every tensor is checked before any is copied: a checkpoint that does not fit leaves the model as it was.
  auto parameters = model.named_parameters(true);
  std::vector<at::Tensor> values;
  for (const auto& item : parameters) {
    at::Tensor value;
    if (!archive.try_read(item.key(), value)) {
      throw std::invalid_argument(path + ": tensor '" + item.key() + "' (shape " + shape_text(item.value()) +
                                  " in the model) is missing from the checkpoint (it was written for another model)");
    }
    if (value.sizes() != item.value().sizes()) {
      throw std::invalid_argument(path + ": tensor '" + item.key() + "' has shape " + shape_text(value) +
                                  " in the checkpoint, " + shape_text(item.value()) +
                                  " in the model (it was written for another model)");
    }
    values.push_back(value);
  }
  const auto buffers = model.named_buffers(true);
  for (const auto& key : archive.keys()) {
    at::Tensor unused;
    const bool tensor = archive.try_read(key, unused) || archive.try_read(key, unused, /*is_buffer=*/true);
    if (tensor && parameters.find(key) == nullptr && buffers.find(key) == nullptr) {
      throw std::invalid_argument(path + ": tensor '" + key + "' is in the checkpoint but not in the model (it was "
                                  "written for another model)");
    }
  }
  size_t k = 0;
  for (auto& item : parameters) item.value().copy_(values[k++]);
  for (auto& item : model.named_buffers(true)) {
    at::Tensor value;
    if (archive.try_read(item.key(), value, /*is_buffer=*/true)) item.value().copy_(value);
  }
}

void load_optimizer_state(const std::string& directory, FlatOptimizer& optimizer) {
  const std::string bytes = read_verified(directory, read_state_json(directory), "optimizer.pt");
  torch::serialize::InputArchive archive;
  open_archive(archive, bytes, directory + "/optimizer.pt");
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const char* name : {"step", "first_moment", "second_moment"}) {
    at::Tensor value;
    if (archive.try_read(name, value)) state.emplace_back(name, value);
  }
  optimizer.load_state(state);
}

void load_loss_state(const std::string& directory, Loss& loss) {
  const std::string path = directory + "/loss.pt";
  const NamedTensors expected = loss.state();
  if (!fs::exists(path)) {
    if (!expected.empty()) throw std::invalid_argument(path + ": missing (the loss plugin keeps a state)");
    return;
  }
  const std::string bytes = read_verified(directory, read_state_json(directory), "loss.pt");
  torch::serialize::InputArchive archive;
  open_archive(archive, bytes, path);
  NamedTensors state;
  for (const auto& [name, tensor] : expected) {
    at::Tensor value;
    if (!archive.try_read(name, value)) throw std::invalid_argument(path + ": tensor '" + name + "' is missing");
    state.emplace_back(name, value);
  }
  loss.load_state(state);
}

void copy_weights(const Model& from, Model& to) {
  at::NoGradGuard no_grad;
  auto source = from.named_parameters(true);
  for (auto& item : to.named_parameters(true)) {
    const at::Tensor* value = source.find(item.key());
    if (value == nullptr || value->sizes() != item.value().sizes()) {
      throw std::runtime_error("cannot copy weights: parameter '" + item.key() + "' differs");
    }
    item.value().copy_(*value);
  }
  auto buffers = from.named_buffers(true);
  for (auto& item : to.named_buffers(true)) {
    if (const at::Tensor* value = buffers.find(item.key())) item.value().copy_(*value);
  }
}

nlohmann::json generator_state() { return generator_state(at::detail::getDefaultCPUGenerator()); }

nlohmann::json generator_state(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  const at::Tensor state = generator.get_state().contiguous();
  const uint8_t* bytes = state.data_ptr<uint8_t>();
  return std::vector<int>(bytes, bytes + state.numel());
}

void copy_cpu_generator(const at::Generator& from, at::Generator& to) {
  auto* source = at::check_generator<at::CPUGeneratorImpl>(from);
  auto* target = at::check_generator<at::CPUGeneratorImpl>(to);
  if (source == target) return;
  std::lock_guard<std::mutex> lock(source->mutex_);
  std::lock_guard<std::mutex> lock_target(target->mutex_);
  target->set_engine(source->engine());
  target->set_next_float_normal_sample(source->next_float_normal_sample());
  target->set_next_double_normal_sample(source->next_double_normal_sample());
}

void restore_generator_state(const nlohmann::json& state, const std::string& where) {
  if (!state.is_array()) throw std::invalid_argument(where + ": expected a list of bytes");
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  const int64_t expected = generator.get_state().numel();
  if (static_cast<int64_t>(state.size()) != expected) {
    throw std::invalid_argument(where + ": expected " + std::to_string(expected) + " bytes, got " +
                                std::to_string(state.size()));
  }
  at::Tensor bytes = at::empty({expected}, at::kByte);
  uint8_t* out = bytes.data_ptr<uint8_t>();
  for (int64_t i = 0; i < expected; ++i) {
    const auto& v = state[static_cast<size_t>(i)];
    if (!v.is_number_integer() || v.get<int>() < 0 || v.get<int>() > 255) {
      throw std::invalid_argument(where + ": byte " + std::to_string(i) + " is not in 0..255");
    }
    out[i] = static_cast<uint8_t>(v.get<int>());
  }
  generator.set_state(bytes);
}

}  // namespace prefengine
