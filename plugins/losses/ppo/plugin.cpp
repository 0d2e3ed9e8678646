#include "ppo_loss.h"

PREFENGINE_PLUGIN("ppo", prefengine::PluginKind::kLoss, prefengine::plugins::losses::PpoLoss,
                  "RLHF-PPO: clipped surrogate + clipped value loss, per-token KL penalty, GAE")
