#include "dpo_loss.h"

PREFENGINE_PLUGIN("dpo", prefengine::PluginKind::kLoss, prefengine::plugins::losses::DpoLoss,
                  "DPO: -log sigmoid(beta*(h_w - h_l)); label_smoothing (cDPO), reference_free")
