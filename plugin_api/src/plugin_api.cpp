// Out-of-line key functions of the plugin interfaces: one typeinfo, shared by engine and plugins.
#include <stdexcept>

#include "prefengine/grader.h"
#include "prefengine/loss.h"
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

Plugin::~Plugin() = default;
KvCache::~KvCache() = default;
Model::~Model() = default;
Loss::~Loss() = default;
Grader::~Grader() = default;

void Model::add_scalar_head() {
  throw std::invalid_argument("this model has no scalar head (reward/value head)");
}

std::unique_ptr<KvCache> Model::new_cache(int64_t /*batch_size*/, int64_t /*max_length*/) {
  return nullptr;
}

void Model::save_pretrained(const std::string& /*directory*/) const {
  throw std::invalid_argument("this model has no pretrained weight format");
}

void Model::load_pretrained(const std::string& /*directory*/) {
  throw std::invalid_argument("this model has no pretrained weight format");
}

LossOutput Loss::pairwise(const PairwiseBatch& /*batch*/) {
  throw std::invalid_argument("this loss does not take preference pairs");
}

void Loss::prepare_rollout(RolloutBatch& /*batch*/) {
  throw std::invalid_argument("this loss does not take rollouts");
}

LossOutput Loss::rollout(const RolloutBatch& /*batch*/) {
  throw std::invalid_argument("this loss does not take rollouts");
}

}  // namespace prefengine
