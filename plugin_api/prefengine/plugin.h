#pragma once
// The base of every prefengine plugin and the symbols each plugin library exports.
//
// A plugin library exports four extern "C" symbols (see PREFENGINE_PLUGIN below):
//   prefengine_plugin_abi_version    int(): must equal kPluginAbiVersion of the engine loading it
//   prefengine_plugin_torch_version  const char*(): the LibTorch version the plugin was compiled
//                                    against; must equal the engine's (torch_version())
//   prefengine_plugin_info           const PluginInfo*(): name, kind and a one-line description
//   prefengine_plugin_create         Plugin*(PluginOptions&): the factory
// The loader checks both versions before it calls anything else.
#include <torch/version.h>

#include <string>

#include "prefengine/plugin_options.h"

#define PREFENGINE_API __attribute__((visibility("default")))

namespace prefengine {

// Bumped whenever a plugin_api header changes in a way that breaks binary compatibility.
// 3: prefengine_plugin_torch_version is required.
inline constexpr int kPluginAbiVersion = 3;

// The LibTorch version libprefengine_plugin_api (and so the engine and the loader) was built
// with, e.g. "1.13.0". A plugin compiled against another LibTorch is refused: LibTorch promises no
// binary compatibility between versions.
PREFENGINE_API const char* torch_version();

// The three kinds of plugin the engine knows.
enum class PluginKind { kLoss, kModel, kGrader };

// "loss", "model" or "grader".
PREFENGINE_API const char* plugin_kind_name(PluginKind kind);

struct PluginInfo {
  const char* name;         // the name a YAML file uses to select the plugin, e.g. "dpo"
  PluginKind kind;          // what interface the created object implements
  const char* description;  // one line for `prefengine plugins`
};

// Root of every plugin object; the engine dynamic_casts to the kind's interface.
class PREFENGINE_API Plugin {
 public:
  virtual ~Plugin();  // out of line in libprefengine_plugin_api: one typeinfo for all
};

}  // namespace prefengine

#define PREFENGINE_PLUGIN_SYMBOL_ABI "prefengine_plugin_abi_version"
#define PREFENGINE_PLUGIN_SYMBOL_TORCH "prefengine_plugin_torch_version"
#define PREFENGINE_PLUGIN_SYMBOL_INFO "prefengine_plugin_info"
#define PREFENGINE_PLUGIN_SYMBOL_CREATE "prefengine_plugin_create"

// Declares the exported symbols of a plugin library. CLASS must derive from the kind's interface
// and have a constructor taking (prefengine::PluginOptions&).
#define PREFENGINE_PLUGIN(NAME, KIND, CLASS, DESCRIPTION)                                       \
  extern "C" PREFENGINE_API int prefengine_plugin_abi_version() {                               \
    return ::prefengine::kPluginAbiVersion;                                                     \
  }                                                                                             \
  extern "C" PREFENGINE_API const char* prefengine_plugin_torch_version() {                     \
    return TORCH_VERSION; /* of the LibTorch headers this plugin is compiled against */         \
  }                                                                                             \
  extern "C" PREFENGINE_API const ::prefengine::PluginInfo* prefengine_plugin_info() {          \
    static const ::prefengine::PluginInfo info{NAME, KIND, DESCRIPTION};                        \
    return &info;                                                                               \
  }                                                                                             \
  extern "C" PREFENGINE_API ::prefengine::Plugin* prefengine_plugin_create(                     \
      ::prefengine::PluginOptions& options) {                                                   \
    return new CLASS(options);                                                                  \
  }
