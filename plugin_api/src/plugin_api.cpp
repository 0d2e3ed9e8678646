// Out-of-line key functions of the plugin interfaces: one typeinfo, shared by engine and plugins.
#include <stdexcept>

#include "prefengine/grader.h"
#include "prefengine/loss.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/rollout_loss.h"
#include "prefengine/sft_loss.h"
#include "prefengine/model.h"
#include "prefengine/plugin.h"

namespace prefengine {

const char* plugin_kind_name(PluginKind kind) {
  switch (kind) {
    case PluginKind::kLoss:
      return "loss";
    case PluginKind::kModel:
      return "model";
    case PluginKind::kGrader:
      return "grader";
  }
  return "unknown";
}

// TORCH_VERSION of the headers libprefengine_plugin_api is compiled against.
const char* torch_version() { return TORCH_VERSION; }

Plugin::~Plugin() = default;
KvCache::~KvCache() = default;
Model::~Model() = default;
Loss::~Loss() = default;
PairwiseLoss::~PairwiseLoss() = default;
PairwiseGradient::~PairwiseGradient() = default;
RolloutLoss::~RolloutLoss() = default;
SftLoss::~SftLoss() = default;
SftGradient::~SftGradient() = default;
SingleTokenResponses::~SingleTokenResponses() = default;
PackedSequences::~PackedSequences() = default;
DirectBackward::~DirectBackward() = default;
AdapterModel::~AdapterModel() = default;
HfExportable::~HfExportable() = default;
Grader::~Grader() = default;

void Model::add_scalar_head() {
  throw std::invalid_argument("this model has no scalar head (reward/value head)");
}

std::unique_ptr<KvCache> Model::new_cache(int64_t /*batch_size*/, int64_t /*max_length*/) {
  return nullptr;
}

}  // namespace prefengine
