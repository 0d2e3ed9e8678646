#include "sft_loss.h"

PREFENGINE_PLUGIN("sft", prefengine::PluginKind::kLoss, prefengine::plugins::losses::SftCrossEntropyLoss,
                  "SFT: mean token NLL of target completions; cross-entropy to target next-token distributions")
