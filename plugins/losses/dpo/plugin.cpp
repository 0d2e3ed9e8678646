#include "dpo_loss.h"

PREFENGINE_PLUGIN("dpo", prefengine::PluginKind::kLoss, prefengine::plugins::losses::DpoLoss,
                  "Direct Preference Optimization: -log sigma(beta*(h_w - h_l)), with label smoothing")
