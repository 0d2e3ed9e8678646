#include "rm_loss.h"

PREFENGINE_PLUGIN("rm", prefengine::PluginKind::kLoss, prefengine::plugins::losses::RmLoss,
                  "reward model: -log sigmoid(r_w - r_l - margin) + c*mean((r_w + r_l)^2)")
