#pragma once
// `prefengine export RUN_DIR/checkpoints/NAME --output DIR`: a transformer checkpoint as a Hugging
// Face model folder (config.json, safetensors, generation_config.json, tokenizer files) that
// `transformers` loads as is. A stage's `export:` block writes the same folder at the stage's end.
#include <cstdint>
#include <string>
#include <vector>

namespace prefengine {
struct ExperimentConfig;
class Model;
class ChatTemplate;
}

namespace prefengine::cli {

struct HfExportSettings {
  std::string dtype = "float32";        // float32, bfloat16 or float16
  int64_t max_shard_size = 2000000000;  // bytes per safetensors file (2GB)
};

// Writes `model` (the experiment's model plugin; it must implement HfExportable) to `output`, the
// tokenizer files from the experiment's tokenizer block; `what` names the model in messages.
void export_model_to_hf(const ExperimentConfig& config, const Model& model, const std::string& output,
                        const HfExportSettings& settings, const std::string& what);

// Writes the checkpoint `checkpoint` (of a run of `config`) to `output`. Throws
// std::invalid_argument naming the checkpoint when the model is not the transformer plugin's.
void export_checkpoint_to_hf(const ExperimentConfig& config, const std::string& checkpoint,
                             const std::string& output, const HfExportSettings& settings);

// Same, with the config read from RUN_DIR/config.yaml (checkpoint = RUN_DIR/checkpoints/NAME).
void export_run_checkpoint_to_hf(const std::string& checkpoint, const std::string& output,
                                 const HfExportSettings& settings);

// The experiment's chat template (each role's text is prefix + content + suffix) as the Jinja
// template transformers' apply_chat_template renders to the same text (literals as Jinja strings,
// untouched by its trim_blocks/lstrip_blocks); with `bos`, {{ bos_token }} first, since the
// engine's prompts start with BOS. An unknown role is raise_exception.
std::string chat_template_as_jinja(const ChatTemplate& chat, bool bos);

// "2GB" (10^9 bytes), "500MB", "64KiB" (2^10), "123" (bytes) -> bytes; std::invalid_argument
// naming `what` otherwise.
int64_t parse_byte_size(const std::string& text, const std::string& what);

int export_command(const std::vector<std::string>& args);

}  // namespace prefengine::cli
