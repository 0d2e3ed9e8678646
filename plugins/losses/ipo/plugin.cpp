#include "ipo_loss.h"

PREFENGINE_PLUGIN("ipo", prefengine::PluginKind::kLoss, prefengine::plugins::losses::IpoLoss,
                  "IPO: (h_w - h_l - 1/(2 tau))^2 on per-token-averaged log-ratios")
