#include "engine/train/adapter_reference.h"

#include <stdexcept>

#include <spdlog/spdlog.h>

#include "engine/train/checkpoint.h"
#include "engine/train/stage_unit.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

// Forwards to the policy with its adapters off, in eval mode and without gradients; restores both
// switches afterwards (also when the forward throws). Holds the policy, does not own its weights
// as parameters (so freezing the reference's parameters cannot freeze the adapters).
class AdaptersOffReference : public Model {
 public:
  AdaptersOffReference(std::shared_ptr<Model> policy, AdapterModel* adapters)
      : policy_(std::move(policy)), adapters_(adapters) {}

  ModelOutput forward(const ModelInput& input) override {
    if (input.want_scalar) {
      throw std::logic_error("the adapters-off reference has no scalar head of its own");
    }
    struct Restore {
      Model& model;
      AdapterModel& adapters;
      bool training, enabled;
      ~Restore() {
        adapters.set_adapters_enabled(enabled);
        model.train(training);
      }
    } restore{*policy_, *adapters_, policy_->is_training(), adapters_->adapters_enabled()};
    at::NoGradGuard no_grad;
    adapters_->set_adapters_enabled(false);
    policy_->eval();
    return policy_->forward(input);
  }
  int64_t vocab_size() const override { return policy_->vocab_size(); }
  std::unique_ptr<KvCache> new_cache(int64_t batch_size, int64_t max_length) override {
    return policy_->new_cache(batch_size, max_length);
  }

 private:
  std::shared_ptr<Model> policy_;
  AdapterModel* adapters_;
};

}  // namespace

std::shared_ptr<Model> adapters_off_reference(StageContext& context) {
  if (!context.stage.reference_from.empty() || !context.model) return nullptr;
  auto* adapters = dynamic_cast<AdapterModel*>(context.model.get());
  if (adapters == nullptr || !adapters->has_adapters()) return nullptr;
  if (!adapters->adapters_are_identity()) {
    // Adapters trained by an earlier stage: switching them off would give the base model, not the
    // policy at this stage's start. A copy keeps the reference's meaning.
    spdlog::info("stage '{}': the adapters were trained before this stage; the reference is a frozen copy",
                 context.stage.name);
    return nullptr;
  }
  context.report["reference_model"] = "policy with adapters disabled";
  spdlog::info("stage '{}': reference = the policy with its adapters disabled (no copy of the weights)",
               context.stage.name);
  return std::make_shared<AdaptersOffReference>(context.model, adapters);
}

bool load_merged_weights(const std::string& checkpoint_directory, Model& model) {
  load_model_weights(checkpoint_directory, model);
  auto* adapters = dynamic_cast<AdapterModel*>(&model);
  if (adapters == nullptr || !adapters->has_adapters()) return false;
  adapters->merge_adapters();
  return true;
}

}  // namespace prefengine
