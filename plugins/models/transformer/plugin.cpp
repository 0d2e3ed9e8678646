// The `transformer` model plugin: a Llama-family decoder (see transformer.h).
#include "transformer.h"

PREFENGINE_PLUGIN("transformer", prefengine::PluginKind::kModel,
                  prefengine::plugins::model::TransformerModel,
                  "Llama-family decoder (RMSNorm, RoPE, SwiGLU, GQA); HF config.json + safetensors")
