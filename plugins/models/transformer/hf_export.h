#pragma once
// Writes a transformer as a Hugging Face model folder that `transformers` loads as is
// (AutoModelForCausalLM.from_pretrained(DIR), AutoTokenizer.from_pretrained(DIR)):
//   config.json                    LlamaConfig / Qwen2Config / MistralConfig layout, torch_dtype
//   model.safetensors              or, past max_shard_size, model-0000i-of-0000n.safetensors and
//                                  model.safetensors.index.json {metadata: {total_size}, weight_map}
//   generation_config.json         bos/eos/pad token ids
//   tokenizer.json, tokenizer_config.json (with chat_template), special_tokens_map.json
//                                  copied from the model's Hugging Face tokenizer folder, or
//                                  written for the byte tokenizer (see HfTokenizerSource)
// Weight names are the model's own (they mirror HF's); lm_head.weight is absent when tied.
#include <cstdint>
#include <string>
#include <vector>

#include "transformer.h"

namespace prefengine::plugins::model {

// Where the tokenizer files come from.
struct HfTokenizerSource {
  // "byte": the engine's byte tokenizer (ids 0..255 bytes, 256 BOS, 257 EOS, 258 PAD, then
  // special_tokens): a byte-level BPE tokenizer.json without merges is written that encodes
  // every text to the same ids (BOS/EOS/PAD spelled "<|bos|>", "<|eos|>", "<|pad|>").
  // "hf_bpe" / "sentencepiece" / "auto": `path` (a tokenizer.json / tokenizer.model or their
  // folder); tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json
  // found there are copied. "" = write no tokenizer files.
  std::string kind;
  std::string path;
  std::vector<std::string> special_tokens;  // byte: the extra special tokens (ids 259, ...)
  // A Jinja chat template (the experiment's preset as Jinja) written into tokenizer_config.json
  // when the copied one has none, and always for the byte tokenizer; "" = none.
  std::string chat_template;
  bool add_bos = true;  // byte: the tokenizer.json post-processor starts every text with BOS
  // The tokenizer's ids (-1 = none): written to generation_config.json and config.json.
  int64_t bos_id = -1, eos_id = -1, pad_id = -1;
};

struct HfExportOptions {
  std::string dtype = "float32";            // "float32", "bfloat16" or "float16"
  int64_t max_shard_size = 2000000000;      // bytes per safetensors file ("2GB", HF's default)
  HfTokenizerSource tokenizer;
};

struct HfExportResult {
  std::vector<std::string> files;     // the files written, relative to the folder
  std::vector<std::string> dropped;   // tensors not exported (the scalar head: no HF counterpart
                                      // in a *ForCausalLM)
  int64_t total_size = 0;             // bytes of tensor data
};

// Writes the folder (created when missing; files of an older export are replaced). Throws
// std::invalid_argument for bad options naming them and std::runtime_error for I/O errors.
HfExportResult export_hugging_face(const TransformerModel& model, const std::string& directory,
                                   const HfExportOptions& options);

// HfExportOptions from the JSON of HfExportable::export_hugging_face (plugin_api model.h); unknown
// keys and wrong types are std::invalid_argument naming the key.
HfExportOptions hf_export_options_from_json(const std::string& json_text);

// The byte tokenizer as a Hugging Face tokenizer.json (see HfTokenizerSource).
std::string byte_tokenizer_json(const std::vector<std::string>& special_tokens, bool add_bos);

}  // namespace prefengine::plugins::model
