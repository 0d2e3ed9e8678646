#include "flex_dpo_loss.h"

PREFENGINE_PLUGIN("flex_dpo", prefengine::PluginKind::kLoss,
                  prefengine::plugins::losses::FlexDpoLoss,
                  "flex-beta DPO: -log sigmoid(beta_chosen*h_w - beta_rejected*h_l)")
