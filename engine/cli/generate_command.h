#pragma once
// `prefengine generate`: samples completions for a JSONL of prompts from an experiment's model
// (--model-config EXP.yaml) or a run's checkpoint (--checkpoint RUN_DIR/checkpoints/<stage>).
#include <string>
#include <vector>

namespace prefengine::cli {

int generate_command(const std::vector<std::string>& args);

}  // namespace prefengine::cli
