// A loss plugin that reports the wrong ABI version: the loader must refuse it before creating it.
#include "prefengine/loss.h"

namespace {
class BadAbiLoss : public prefengine::Loss {
 public:
  explicit BadAbiLoss(prefengine::PluginOptions&) {}
  prefengine::LossRequirements requirements() const override { return {}; }
};
}  // namespace

extern "C" PREFENGINE_API int prefengine_plugin_abi_version() { return prefengine::kPluginAbiVersion + 41; }
extern "C" PREFENGINE_API const prefengine::PluginInfo* prefengine_plugin_info() {
  static const prefengine::PluginInfo info{"bad_abi", prefengine::PluginKind::kLoss, "wrong ABI"};
  return &info;
}
extern "C" PREFENGINE_API prefengine::Plugin* prefengine_plugin_create(prefengine::PluginOptions& o) {
  return new BadAbiLoss(o);
}
