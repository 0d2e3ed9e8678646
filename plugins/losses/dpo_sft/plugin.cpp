#include "dpo_sft_loss.h"

PREFENGINE_PLUGIN("dpo_sft", prefengine::PluginKind::kLoss, prefengine::plugins::losses::DpoSftLoss,
                  "DPO + sft_weight * mean token NLL of the chosen response")
