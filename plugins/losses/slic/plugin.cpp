#include "slic_loss.h"

PREFENGINE_PLUGIN("slic", prefengine::PluginKind::kLoss, prefengine::plugins::losses::SlicLoss,
                  "SLiC-HF: max(0, delta - logp_w + logp_l) - lambda*logp_w; no reference model")
