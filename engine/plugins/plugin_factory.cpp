#include "engine/plugins/plugin_factory.h"

#include <stdexcept>
#include <string>

#include <c10/util/Exception.h>

#include "prefengine/grader.h"
#include "prefengine/loss.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

std::string at_location(const PluginOptions& options, const std::string& key) {
  auto it = options.entries().find(key);
  const std::string where = it != options.entries().end() && !it->second.location.empty()
                                ? it->second.location
                                : options.location();
  const std::string path = options.path().empty() ? key : options.path() + "." + key;
  return where.empty() ? path : where + ": " + path;
}

PluginOptions copy_options(const PluginOptions& options) {
  PluginOptions copy(options.path(), options.location());
  for (const auto& [key, entry] : options.entries()) copy.set(key, entry);
  return copy;
}

// Creates a plugin from a config block, putting an "unknown ... plugin" error at the block's
// `plugin:` key (option errors already name their keys).
template <typename Create>
auto create_from_block(const PluginOptions& block, const char* kind, Create create) {
  PluginOptions options = copy_options(block);
  (void)options.get_string("plugin", "");  // consumed by the engine, not by the plugin
  try {
    return create(options);
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    if (message.rfind(std::string("unknown ") + kind + " plugin", 0) == 0) {
      throw std::invalid_argument(at_location(block, "plugin") + ": " + message);
    }
    throw;
  } catch (const c10::Error& e) {  // a LibTorch error in the plugin's constructor, naming it (the CLI shows
    // error_line() of it: the backtrace only at --log-level debug)
    throw std::invalid_argument(at_location(block, "plugin") + ": " + kind + " plugin '" +
                                copy_options(block).get_string("plugin", "") + "': " + e.what());
  }
}

}  // namespace

std::shared_ptr<Model> create_model(const PluginLoader& loader, const ExperimentConfig& config) {
  return create_from_block(config.model, "model", [&](PluginOptions& options) {
    return loader.create_model(config.model_plugin, options);
  });
}

std::shared_ptr<Loss> create_loss(const PluginLoader& loader, const StageOptions& stage) {
  return create_from_block(stage.loss, "loss", [&](PluginOptions& options) {
    return loader.create_loss(stage.loss_plugin, options);
  });
}

std::shared_ptr<Grader> create_grader(const PluginLoader& loader, const GraderOptions& grader) {
  return create_from_block(grader.options, "grader", [&](PluginOptions& options) {
    return loader.create_grader(grader.plugin, options);
  });
}

}  // namespace prefengine
