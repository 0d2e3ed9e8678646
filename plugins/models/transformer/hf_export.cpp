#include "hf_export.h"

#include "lora.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "safetensors.h"

namespace prefengine::plugins::model {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

// The transformers version whose file layout is written (config.json, generation_config.json).
constexpr const char* kTransformersVersion = "4.46.0";

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path.string() + ": cannot open for writing");
  out << text;
  out.close();
  if (!out) throw std::runtime_error(path.string() + ": cannot write");
}

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

at::ScalarType export_dtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  throw std::invalid_argument("export: dtype must be float32, bfloat16 or float16, got '" + name + "'");
}

// GPT-2's byte-to-unicode map: printable bytes stand for themselves, the others are moved to
// U+0100 and up, in byte order.
std::string byte_symbol(int byte) {
  auto printable = [](int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  };
  int code = byte;
  if (!printable(byte)) {
    int n = 0;
    for (int b = 0; b < byte; ++b) n += printable(b) ? 0 : 1;
    code = 256 + n;
  }
  std::string utf8;
  if (code < 0x80) {
    utf8 += char(code);
  } else {
    utf8 += char(0xC0 | (code >> 6));
    utf8 += char(0x80 | (code & 0x3F));
  }
  return utf8;
}

const char* kBos = "<|bos|>";
const char* kEos = "<|eos|>";
const char* kPad = "<|pad|>";

ordered_json added_token(int64_t id, const std::string& content) {
  return ordered_json{{"id", id},         {"content", content}, {"single_word", false},
                      {"lstrip", false},  {"rstrip", false},    {"normalized", false},
                      {"special", true}};
}

// The byte tokenizer's tokenizer_config.json and special_tokens_map.json.
void write_byte_tokenizer(const fs::path& dir, const HfTokenizerSource& source,
                          int64_t max_length, std::vector<std::string>* files) {
  write_file(dir / "tokenizer.json", byte_tokenizer_json(source.special_tokens, source.add_bos));
  ordered_json decoder = ordered_json::object();
  std::vector<std::string> names = {kBos, kEos, kPad};
  names.insert(names.end(), source.special_tokens.begin(), source.special_tokens.end());
  for (size_t i = 0; i < names.size(); ++i) {
    ordered_json token = added_token(256 + int64_t(i), names[i]);
    token.erase("id");
    decoder[std::to_string(256 + i)] = token;
  }
  ordered_json config = {{"add_bos_token", source.add_bos},
                         {"add_eos_token", false},
                         {"added_tokens_decoder", decoder},
                         {"additional_special_tokens", source.special_tokens},
                         {"bos_token", kBos},
                         {"clean_up_tokenization_spaces", false},
                         {"eos_token", kEos},
                         {"model_max_length", max_length},
                         {"pad_token", kPad},
                         {"tokenizer_class", "PreTrainedTokenizerFast"},
                         {"unk_token", nullptr}};
  if (!source.chat_template.empty()) config["chat_template"] = source.chat_template;
  write_file(dir / "tokenizer_config.json", config.dump(2) + "\n");
  const ordered_json map = {{"additional_special_tokens", source.special_tokens},
                            {"bos_token", kBos},
                            {"eos_token", kEos},
                            {"pad_token", kPad}};
  write_file(dir / "special_tokens_map.json", map.dump(2) + "\n");
  files->insert(files->end(), {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"});
}

// Copies a Hugging Face tokenizer folder's files; adds the chat template when it has none.
void copy_hf_tokenizer(const fs::path& dir, const HfTokenizerSource& source, int64_t max_length,
                       std::vector<std::string>* files) {
  if (source.path.empty()) {
    throw std::invalid_argument("export: tokenizer kind '" + source.kind + "' without a path");
  }
  const fs::path given(source.path);
  const fs::path from = fs::is_directory(given) ? given : given.parent_path();
  if (!fs::exists(given)) throw std::runtime_error(source.path + ": tokenizer file not found");
  bool copied_any = false;
  for (const char* name : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                           "special_tokens_map.json", "added_tokens.json", "chat_template.jinja"}) {
    if (!fs::exists(from / name)) continue;
    fs::copy_file(from / name, dir / name, fs::copy_options::overwrite_existing);
    files->push_back(name);
    copied_any = true;
  }
  // A tokenizer file named by path under another name (my_tokenizer.json).
  if (!fs::is_directory(given)) {
    const std::string ext = given.extension().string();
    const std::string target = ext == ".model" ? "tokenizer.model" : "tokenizer.json";
    if (given.filename() != target) {
      fs::copy_file(given, dir / target, fs::copy_options::overwrite_existing);
      files->push_back(target);
      copied_any = true;
    }
  }
  if (!copied_any) {
    throw std::runtime_error(source.path + ": no tokenizer.json or tokenizer.model to copy");
  }
  const fs::path config_path = dir / "tokenizer_config.json";
  const bool has_jinja_file = fs::exists(dir / "chat_template.jinja");
  if (fs::exists(config_path)) {
    nlohmann::json config = read_json_file(config_path);
    if (!config.is_object()) throw std::invalid_argument(config_path.string() + ": expected an object");
    if (!config.contains("chat_template") && !has_jinja_file && !source.chat_template.empty()) {
      config["chat_template"] = source.chat_template;
      write_file(config_path, config.dump(2) + "\n");
    }
    return;
  }
  // No tokenizer_config.json: a minimal one, the special tokens spelled as tokenizer.json has them.
  ordered_json config = {{"model_max_length", max_length},
                         {"tokenizer_class", fs::exists(dir / "tokenizer.json")
                                                 ? "PreTrainedTokenizerFast"
                                                 : "LlamaTokenizer"}};
  if (fs::exists(dir / "tokenizer.json")) {
    const nlohmann::json tokenizer = read_json_file(dir / "tokenizer.json");
    auto spelled = [&](int64_t id) -> std::string {
      if (id < 0 || !tokenizer.contains("added_tokens")) return "";
      for (const auto& t : tokenizer["added_tokens"]) {
        if (t.value("id", int64_t(-1)) == id) return t.value("content", std::string());
      }
      return "";
    };
    const std::pair<const char*, int64_t> ids[] = {
        {"bos_token", source.bos_id}, {"eos_token", source.eos_id}, {"pad_token", source.pad_id}};
    for (const auto& [key, id] : ids) {
      const std::string text = spelled(id);
      if (!text.empty()) config[key] = text;
    }
  }
  if (!source.chat_template.empty() && !has_jinja_file) config["chat_template"] = source.chat_template;
  write_file(config_path, config.dump(2) + "\n");
  files->push_back("tokenizer_config.json");
}

}  // namespace

std::string byte_tokenizer_json(const std::vector<std::string>& special_tokens, bool add_bos) {
  std::set<std::string> seen = {kBos, kEos, kPad};
  for (const auto& s : special_tokens) {
    if (s.empty() || !seen.insert(s).second) {
      throw std::invalid_argument("export: byte tokenizer special token '" + s +
                                  "' is empty or repeats one of <|bos|>, <|eos|>, <|pad|> or another");
    }
  }
  ordered_json added = ordered_json::array();
  added.push_back(added_token(256, kBos));
  added.push_back(added_token(257, kEos));
  added.push_back(added_token(258, kPad));
  for (size_t i = 0; i < special_tokens.size(); ++i) {
    added.push_back(added_token(259 + int64_t(i), special_tokens[i]));
  }
  ordered_json vocab = ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  ordered_json post = nullptr;
  if (add_bos) {
    const ordered_json bos = {{"SpecialToken", {{"id", kBos}, {"type_id", 0}}}};
    post = {{"type", "TemplateProcessing"},
            {"single", {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair",
             {bos, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, bos,
              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
            {"special_tokens", {{kBos, {{"id", kBos}, {"ids", {256}}, {"tokens", {kBos}}}}}}};
  }
  const ordered_json byte_level = {{"type", "ByteLevel"},
                                   {"add_prefix_space", false},
                                   {"trim_offsets", false},
                                   {"use_regex", false}};
  const ordered_json j = {{"version", "1.0"},
                          {"truncation", nullptr},
                          {"padding", nullptr},
                          {"added_tokens", added},
                          {"normalizer", nullptr},
                          {"pre_tokenizer", byte_level},
                          {"post_processor", post},
                          {"decoder", byte_level},
                          {"model",
                           {{"type", "BPE"},
                            {"dropout", nullptr},
                            {"unk_token", nullptr},
                            {"continuing_subword_prefix", nullptr},
                            {"end_of_word_suffix", nullptr},
                            {"fuse_unk", false},
                            {"byte_fallback", false},
                            {"ignore_merges", false},
                            {"vocab", vocab},
                            {"merges", ordered_json::array()}}}};
  return j.dump(2) + "\n";
}

HfExportResult export_hugging_face(const TransformerModel& model, const std::string& directory,
                                   const HfExportOptions& options) {
  const at::ScalarType dtype = export_dtype(options.dtype);
  if (options.max_shard_size < 1) {
    throw std::invalid_argument("export: max_shard_size must be >= 1 byte, got " +
                                std::to_string(options.max_shard_size));
  }
  const fs::path dir(directory);
  fs::create_directories(dir);
  HfExportResult result;

  // Tensors in the model's module order, grouped into shards as transformers does: a tensor
  // that would take the current shard past the limit starts the next one.
  struct Entry {
    std::string name;
    at::Tensor tensor;
  };
  std::vector<std::vector<Entry>> shards(1);
  int64_t shard_bytes = 0;
  const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
  // LoRA adapters are not weights of a *ForCausalLM: they are folded into their base weights
  // (W + (alpha/rank) B A), so the folder computes what the trained model computes.
  std::map<std::string, at::Tensor> merged;
  if (model.has_adapters()) {
    for (const auto& item : model.named_parameters()) {
      if (!is_lora_parameter(item.key())) merged.emplace(item.key(), item.value().detach());
    }
    model.fold_adapters_into(merged);
  }
  for (const auto& item : model.named_parameters()) {
    if (is_lora_parameter(item.key())) continue;
    if (item.key() == "score.weight") {  // the scalar head: no place in a *ForCausalLM
      result.dropped.push_back(item.key());
      continue;
    }
    const at::Tensor& value = merged.empty() ? item.value() : merged.at(item.key());
    const int64_t bytes = value.numel() * element;
    if (!shards.back().empty() && shard_bytes + bytes > options.max_shard_size) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back({item.key(), value});
    shard_bytes += bytes;
    result.total_size += bytes;
  }

  // Remove the weights of an older export so that no stale shard is left next to the new ones.
  static const std::regex shard_name(R"(model-[0-9]{5}-of-[0-9]{5}\.safetensors)");
  if (fs::exists(dir)) {
    for (const auto& file : fs::directory_iterator(dir)) {
      const std::string name = file.path().filename().string();
      if (name == "model.safetensors" || name == "model.safetensors.index.json" ||
          std::regex_match(name, shard_name)) {
        fs::remove(file.path());
      }
    }
  }

  nlohmann::json weight_map = nlohmann::json::object();
  const size_t count = shards.size();
  for (size_t s = 0; s < count; ++s) {
    std::string name = "model.safetensors";
    if (count > 1) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, "model-%05zu-of-%05zu.safetensors", s + 1, count);
      name = buffer;
    }
    std::map<std::string, at::Tensor> tensors;
    for (const auto& e : shards[s]) {
      tensors.emplace(e.name, e.tensor.detach().to(at::kCPU).to(dtype).contiguous());
      weight_map[e.name] = name;
    }
    save_safetensors((dir / name).string(), tensors, {{"format", "pt"}});
    result.files.push_back(name);
  }
  if (count > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", result.total_size}}},
                                  {"weight_map", weight_map}};
    write_file(dir / "model.safetensors.index.json", index.dump(2) + "\n");
    result.files.push_back("model.safetensors.index.json");
  }

  // config.json and generation_config.json, with the tokenizer's special ids where it has them.
  TransformerConfig config = model.config();
  const HfTokenizerSource& tok = options.tokenizer;
  if (tok.bos_id >= 0) config.bos_token_id = tok.bos_id;
  if (tok.eos_id >= 0) config.eos_token_id = tok.eos_id;
  if (tok.pad_id >= 0) config.pad_token_id = tok.pad_id;
  write_file(dir / "config.json", config.to_json(options.dtype));
  result.files.push_back("config.json");
  ordered_json generation = {{"_from_model_config", true}};
  if (config.bos_token_id >= 0) generation["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_id >= 0) generation["eos_token_id"] = config.eos_token_id;
  if (config.pad_token_id >= 0) generation["pad_token_id"] = config.pad_token_id;
  generation["transformers_version"] = kTransformersVersion;
  write_file(dir / "generation_config.json", generation.dump(2) + "\n");
  result.files.push_back("generation_config.json");

  if (tok.kind == "byte") {
    write_byte_tokenizer(dir, tok, config.max_position_embeddings, &result.files);
  } else if (!tok.kind.empty()) {
    copy_hf_tokenizer(dir, tok, config.max_position_embeddings, &result.files);
  }
  return result;
}

HfExportOptions hf_export_options_from_json(const std::string& json_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("export options: not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw std::invalid_argument("export options: expected a JSON object");
  auto fail = [](const std::string& key, const std::string& what) {
    throw std::invalid_argument("export options: '" + key + "' must be " + what);
  };
  HfExportOptions o;
  for (const auto& [key, value] : j.items()) {
    if (key == "dtype") {
      if (!value.is_string()) fail(key, "a string");
      o.dtype = value.get<std::string>();
    } else if (key == "max_shard_size") {
      if (!value.is_number_integer()) fail(key, "an integer (bytes)");
      o.max_shard_size = value.get<int64_t>();
    } else if (key == "tokenizer") {
      if (!value.is_object()) fail(key, "an object");
      HfTokenizerSource& t = o.tokenizer;
      for (const auto& [name, v] : value.items()) {
        const std::string k = "tokenizer." + name;
        if (name == "kind" || name == "path" || name == "chat_template") {
          if (!v.is_string()) fail(k, "a string");
          (name == "kind" ? t.kind : name == "path" ? t.path : t.chat_template) = v.get<std::string>();
        } else if (name == "special_tokens") {
          if (!v.is_array()) fail(k, "a list of strings");
          for (const auto& s : v) {
            if (!s.is_string()) fail(k, "a list of strings");
            t.special_tokens.push_back(s.get<std::string>());
          }
        } else if (name == "add_bos") {
          if (!v.is_boolean()) fail(k, "true or false");
          t.add_bos = v.get<bool>();
        } else if (name == "bos_id" || name == "eos_id" || name == "pad_id") {
          if (!v.is_number_integer()) fail(k, "an integer");
          (name == "bos_id" ? t.bos_id : name == "eos_id" ? t.eos_id : t.pad_id) = v.get<int64_t>();
        } else {
          throw std::invalid_argument("export options: unknown key '" + k + "'");
        }
      }
    } else {
      throw std::invalid_argument("export options: unknown key '" + key + "'");
    }
  }
  return o;
}

std::string TransformerModel::export_hugging_face(const std::string& directory,
                                                  const std::string& options_json) const {
  const HfExportResult r =
      plugins::model::export_hugging_face(*this, directory, hf_export_options_from_json(options_json));
  return nlohmann::json{{"files", r.files}, {"dropped", r.dropped}, {"total_size", r.total_size}}.dump();
}

}  // namespace prefengine::plugins::model
