// A plugin library without the factory symbol.
#include "prefengine/plugin.h"

extern "C" PREFENGINE_API int prefengine_plugin_abi_version() { return prefengine::kPluginAbiVersion; }
extern "C" PREFENGINE_API const char* prefengine_plugin_torch_version() { return TORCH_VERSION; }
extern "C" PREFENGINE_API const prefengine::PluginInfo* prefengine_plugin_info() {
  static const prefengine::PluginInfo info{"no_factory", prefengine::PluginKind::kLoss, "no factory"};
  return &info;
}
