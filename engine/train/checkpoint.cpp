#include "engine/train/checkpoint.h"

#include <fstream>
#include <stdexcept>

#include <boost/filesystem.hpp>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "engine/train/flat_optimizer.h"
#include "prefengine/model.h"

namespace prefengine {

namespace fs = boost::filesystem;

void save_checkpoint(const std::string& directory, const Model& model, const FlatOptimizer* optimizer,
                     const nlohmann::json& state) {
  const fs::path target(directory);
  const fs::path tmp = target.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  {
    torch::serialize::OutputArchive archive;
    for (const auto& item : model.named_parameters(/*recurse=*/true)) {
      archive.write(item.key(), item.value().detach().clone());  // a view would save the flat buffer
    }
    for (const auto& item : model.named_buffers(/*recurse=*/true)) {
      archive.write(item.key(), item.value().detach().clone(), /*is_buffer=*/true);
    }
    archive.save_to((tmp / "model.pt").string());
  }
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive archive;
    for (const auto& [name, tensor] : optimizer->state()) archive.write(name, tensor);
    archive.save_to((tmp / "optimizer.pt").string());
  }
  {
    std::ofstream out((tmp / "state.json").string());
    out << state.dump(2) << "\n";
    if (!out) throw std::runtime_error((tmp / "state.json").string() + ": cannot write");
  }
  const fs::path old = target.string() + ".old";
  fs::remove_all(old);
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(tmp, target);
  fs::remove_all(old);
  std::ofstream latest((target.parent_path() / "latest").string(), std::ios::trunc);
  latest << target.filename().string() << "\n";
}

void load_model_weights(const std::string& directory, Model& model) {
  const std::string path = directory + "/model.pt";
  if (!fs::exists(path)) throw std::invalid_argument(path + ": no such checkpoint file");
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  at::NoGradGuard no_grad;
  for (auto& item : model.named_parameters(true)) {
    at::Tensor value;
    if (!archive.try_read(item.key(), value)) {
      throw std::invalid_argument(path + ": tensor '" + item.key() + "' is missing");
    }
    if (value.sizes() != item.value().sizes()) {
      throw std::invalid_argument(path + ": tensor '" + item.key() + "' has the wrong shape");
    }
    item.value().copy_(value);
  }
  for (auto& item : model.named_buffers(true)) {
    at::Tensor value;
    if (archive.try_read(item.key(), value, /*is_buffer=*/true)) item.value().copy_(value);
  }
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

}  // namespace prefengine
