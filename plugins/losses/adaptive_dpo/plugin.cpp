#include "adaptive_dpo_loss.h"

PREFENGINE_PLUGIN("adaptive_dpo", prefengine::PluginKind::kLoss,
                  prefengine::plugins::losses::AdaptiveDpoLoss,
                  "flex-beta DPO whose beta_rejected is steered to hold the rejected log-ratio at a target")
