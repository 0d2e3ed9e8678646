#include "toy_mlp_model.h"

PREFENGINE_PLUGIN("toy_mlp", prefengine::PluginKind::kModel,
                  prefengine::plugins::models::ToyMlpModel,
                  "The paper's toy model: an MLP from a one-hot prompt to a distribution over responses")
