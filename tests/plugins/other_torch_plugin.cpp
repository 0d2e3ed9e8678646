// A loss plugin that reports another LibTorch version (PREFENGINE_TEST_TORCH_VERSION, a compile
// definition) with the right ABI version: the loader must refuse it, naming the file and both
// LibTorch versions, before it creates anything.
#include "prefengine/loss.h"

namespace {
class OtherTorchLoss : public prefengine::Loss {
 public:
  explicit OtherTorchLoss(prefengine::PluginOptions&) {}
  prefengine::LossRequirements requirements() const override { return {}; }
};
}  // namespace

extern "C" PREFENGINE_API int prefengine_plugin_abi_version() { return prefengine::kPluginAbiVersion; }
extern "C" PREFENGINE_API const char* prefengine_plugin_torch_version() {
  return PREFENGINE_TEST_TORCH_VERSION;
}
extern "C" PREFENGINE_API const prefengine::PluginInfo* prefengine_plugin_info() {
  static const prefengine::PluginInfo info{"other_torch", prefengine::PluginKind::kLoss,
                                           "compiled against another LibTorch"};
  return &info;
}
extern "C" PREFENGINE_API prefengine::Plugin* prefengine_plugin_create(prefengine::PluginOptions& o) {
  return new OtherTorchLoss(o);
}
