// LoRA on the transformer plugin (plugins/models/transformer/lora.h) and the engine's adapters-off
// reference (engine/train/adapter_reference.h): options, step 0 = the base model, only adapters
// train, the reference is the frozen base, a LoRA DPO run equals DPO on the full model restricted
// to the adapter (chain rule, computed here), resume, PEFT's files read independently, merging.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/serialize/input-archive.h>

#include "engine/config/experiment_config.h"
#include "engine/train/adapter_reference.h"
#include "engine/train/checkpoint.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/init_from.h"
#include "engine/train/stage_unit.h"
#include "lora.h"
#include "test_util.h"
#include "transformer.h"

namespace prefengine {
namespace {

using plugins::model::is_lora_parameter;
using plugins::model::LoraOptions;
using plugins::model::TransformerConfig;
using plugins::model::TransformerModel;

TransformerConfig tiny_config() {
  TransformerConfig c;
  c.vocab_size = 37;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  return c;
}

LoraOptions lora_options(int64_t rank, double alpha, std::vector<std::string> targets) {
  LoraOptions o;
  o.rank = rank;
  o.alpha = alpha;
  o.target_modules = std::move(targets);
  return o;
}

at::Tensor some_ids(int64_t vocab, int64_t b = 2, int64_t t = 9) {
  at::manual_seed(11);
  return at::randint(0, vocab, {b, t}, at::kLong);
}

at::Tensor logits_of(Model& model, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  ModelInput in;
  in.input_ids = ids;
  return model.forward(in).logits;
}

// Gives every lora_B a random value (a trained adapter).
void randomize_b(TransformerModel& model) {
  at::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    if (item.key().find(".lora_B.") != std::string::npos) item.value().normal_(0.0, 0.3);
  }
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

std::map<std::string, at::Tensor> read_model_pt(const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& key : archive.keys()) {
    at::Tensor t;
    if (archive.try_read(key, t)) out[key] = t;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options

std::string option_error(const std::map<std::string, std::string>& keys,
                         const std::map<std::string, std::vector<std::string>>& lists = {}) {
  PluginOptions options("model", "m.yaml:1:1");
  options.set_scalar("vocab_size", "37");
  options.set_scalar("hidden_size", "16");
  options.set_scalar("intermediate_size", "24");
  options.set_scalar("num_hidden_layers", "1");
  options.set_scalar("num_attention_heads", "2");
  for (const auto& [k, v] : keys) options.set_scalar(k, v);
  for (const auto& [k, v] : lists) {
    OptionEntry e;
    e.is_list = true;
    e.list = v;
    options.set(k, e);
  }
  try {
    TransformerModel model(options);
    options.reject_unread();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(LoraOptionsTest, EveryBadKeyIsAnErrorNamingIt) {
  auto expect = [](const std::string& message, const std::string& key) {
    EXPECT_NE(message.find(key), std::string::npos) << "expected '" << key << "' in: " << message;
  };
  expect(option_error({{"lora.alpha", "16"}}), "lora.rank");  // rank is required
  expect(option_error({{"lora.rank", "0"}}), "lora.rank");
  expect(option_error({{"lora.rank", "four"}}), "lora.rank");
  expect(option_error({{"lora.rank", "4"}, {"lora.alpha", "0"}}), "lora.alpha");
  expect(option_error({{"lora.rank", "4"}, {"lora.dropout", "1"}}), "lora.dropout");
  expect(option_error({{"lora.rank", "4"}, {"lora.dropout", "-0.1"}}), "lora.dropout");
  const std::string unknown = option_error({{"lora.rank", "4"}}, {{"lora.target_modules", {"q_proj", "qkv_proj"}}});
  expect(unknown, "lora.target_modules");
  expect(unknown, "qkv_proj");
  expect(option_error({{"lora.rank", "4"}}, {{"lora.target_modules", {"q_proj", "q_proj"}}}), "lora.target_modules");
  expect(option_error({{"lora", "8"}}), "lora");
  expect(option_error({{"lora.rank", "4"}, {"lora.alfa", "8"}}), "lora.alfa");  // unknown key in the block
  expect(option_error({{"lora.rank", "4"}, {"lora.dropout", "0.1"}, {"gradient_checkpointing", "true"}}),
         "lora.dropout");
  EXPECT_EQ(option_error({{"lora.rank", "4"}, {"lora.alpha", "8"}, {"lora.dropout", "0.05"}},
                         {{"lora.target_modules", {"q_proj", "down_proj"}}}),
            "");
}

TEST(LoraOptionsTest, DefaultsAndAllLinearAttachWhereAsked) {
  PluginOptions options("model");
  options.set_scalar("vocab_size", "37");
  options.set_scalar("hidden_size", "16");
  options.set_scalar("intermediate_size", "24");
  options.set_scalar("num_hidden_layers", "2");
  options.set_scalar("num_attention_heads", "2");
  options.set_scalar("lora.rank", "2");
  TransformerModel model(options);
  ASSERT_NE(model.lora(), nullptr);
  EXPECT_EQ(model.lora()->options().alpha, 8.0);  // PEFT's default lora_alpha
  EXPECT_EQ(model.lora()->options().target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(model.lora()->adapters().size(), 4u);  // 2 layers x {q, v}

  PluginOptions all("model");
  all.set_scalar("num_hidden_layers", "3");
  all.set_scalar("lora.rank", "2");
  all.set_scalar("lora.target_modules", "all-linear");
  TransformerModel every(all);
  EXPECT_EQ(every.lora()->adapters().size(), 21u);  // 3 layers x 7 projections
  EXPECT_TRUE(every.lora()->adapters().count("model.layers.2.mlp.down_proj"));
}

// ---------------------------------------------------------------------------------------------
// The model

TEST(LoraModelTest, StepZeroEqualsTheBaseModelAndInitIsPefts) {
  at::manual_seed(1);
  TransformerModel base(tiny_config());
  TransformerModel lora(tiny_config());
  copy_weights(base, lora);
  lora.enable_lora(lora_options(4, 8, plugins::model::lora_target_names()));
  const at::Tensor ids = some_ids(37);
  // B = 0: y + scale * B A x adds exact zeros.
  EXPECT_TRUE(at::equal(logits_of(base, ids), logits_of(lora, ids)));
  lora.train();
  EXPECT_TRUE(at::equal(logits_of(base, ids), logits_of(lora, ids)));

  // A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a = sqrt(5)), B = 0, shapes as PEFT.
  const TransformerConfig c = tiny_config();
  int64_t count = 0;
  for (const auto& [name, adapter] : lora.lora()->adapters()) {
    const at::Tensor& w = adapter->base_weight();
    const double bound = 1.0 / std::sqrt(double(w.size(1)));
    EXPECT_EQ(adapter->a().sizes(), (std::vector<int64_t>{4, w.size(1)})) << name;
    EXPECT_EQ(adapter->b().sizes(), (std::vector<int64_t>{w.size(0), 4})) << name;
    EXPECT_TRUE(at::equal(adapter->b(), at::zeros_like(adapter->b()))) << name;
    EXPECT_LE(adapter->a().abs().max().item<double>(), bound) << name;
    ++count;
  }
  EXPECT_EQ(count, 7 * c.num_hidden_layers);
  // The variance of U(-b, b) is b^2 / 3: over every A of the in=16 projections (all but down_proj).
  std::vector<at::Tensor> a16;
  for (const auto& [name, adapter] : lora.lora()->adapters()) {
    if (adapter->a().size(1) == 16) a16.push_back(adapter->a().flatten());
  }
  const at::Tensor all = at::cat(a16);
  EXPECT_NEAR(all.var().item<double>(), (1.0 / 16) / 3, 0.15 * (1.0 / 16) / 3) << all.numel() << " draws";
  EXPECT_NEAR(all.mean().item<double>(), 0.0, 0.02);
}

TEST(LoraModelTest, OnlyAdaptersAreTrainable) {
  at::manual_seed(2);
  TransformerModel model(tiny_config());
  model.enable_lora(lora_options(3, 6, {"q_proj", "v_proj", "down_proj"}));
  model.add_scalar_head();  // a reward/value head added later trains with the adapters
  const TransformerConfig c = tiny_config();
  const int64_t d = c.head_size();
  // r (in + out) per adapter: q [hidden -> heads*d], v [hidden -> kv*d], down [inter -> hidden].
  const int64_t per_layer = 3 * (c.hidden_size + c.num_attention_heads * d) +
                            3 * (c.hidden_size + c.num_key_value_heads * d) +
                            3 * (c.intermediate_size + c.hidden_size);
  int64_t trainable = 0;
  for (const auto& item : model.named_parameters()) {
    const bool adapter = is_lora_parameter(item.key());
    const bool head = item.key() == "score.weight";
    EXPECT_EQ(item.value().requires_grad(), adapter || head) << item.key();
    if (adapter) trainable += item.value().numel();
  }
  EXPECT_EQ(trainable, c.num_hidden_layers * per_layer);
}

TEST(LoraModelTest, MergingGivesTheSameLogitsAsAdaptersOn) {
  at::manual_seed(3);
  TransformerModel model(tiny_config());
  model.enable_lora(lora_options(4, 16, plugins::model::lora_target_names()));
  randomize_b(model);
  const at::Tensor ids = some_ids(37);
  const at::Tensor on = logits_of(model, ids);
  model.set_adapters_enabled(false);
  const at::Tensor off = logits_of(model, ids);
  model.set_adapters_enabled(true);
  EXPECT_GT((on - off).abs().max().item<double>(), 1e-2);  // the adapters matter

  // save_pretrained writes the merged weights (no adapter tensors): a plain model loads them.
  const std::string dir = testing::make_temp_dir("lora-merged");
  model.save_pretrained(dir);
  TransformerModel plain(tiny_config());
  plain.load_pretrained(dir);
  EXPECT_TRUE(at::allclose(logits_of(plain, ids), on, 1e-5, 1e-5));

  // W + scale * B A written by hand for one projection equals the merged file's tensor.
  const auto& adapter = model.lora()->adapters().at("model.layers.1.mlp.up_proj");
  const at::Tensor expected = adapter->base_weight() + at::matmul(adapter->b(), adapter->a()) * (16.0 / 4);
  EXPECT_TRUE(at::allclose(plain.named_parameters()["model.layers.1.mlp.up_proj.weight"], expected, 1e-6, 1e-7));

  // merge_adapters folds in place: same logits, identity adapters afterwards.
  EXPECT_FALSE(model.adapters_are_identity());
  model.merge_adapters();
  EXPECT_TRUE(model.adapters_are_identity());
  EXPECT_TRUE(at::allclose(logits_of(model, ids), on, 1e-5, 1e-5));
}

TEST(LoraModelTest, GradientCheckpointingGivesTheSameAdapterGradients) {
  // The checkpointed layers recompute the adapters in backward; the gradients must not change.
  at::manual_seed(6);
  TransformerModel plain(tiny_config());
  TransformerModel checkpointed(tiny_config());
  copy_weights(plain, checkpointed);
  plain.enable_lora(lora_options(2, 4, plugins::model::lora_target_names()));
  checkpointed.enable_lora(lora_options(2, 4, plugins::model::lora_target_names()));
  randomize_b(plain);
  copy_weights(plain, checkpointed);
  checkpointed.set_gradient_checkpointing(true);
  const at::Tensor ids = some_ids(37);
  std::map<std::string, at::Tensor> grads[2];
  TransformerModel* models[2] = {&plain, &checkpointed};
  for (int i = 0; i < 2; ++i) {
    models[i]->train();
    ModelInput in;
    in.input_ids = ids;
    at::log_softmax(models[i]->forward(in).logits, -1).select(-1, 3).sum().backward();
    for (const auto& item : models[i]->named_parameters()) {
      if (is_lora_parameter(item.key())) grads[i][item.key()] = item.value().grad();
    }
  }
  ASSERT_EQ(grads[0].size(), 28u);
  for (const auto& [name, g] : grads[0]) {
    ASSERT_TRUE(g.defined()) << name;
    ASSERT_TRUE(grads[1][name].defined()) << name;
    EXPECT_GT(max_abs(g), 0) << name;
    EXPECT_TRUE(at::allclose(grads[1][name], g, 1e-4, 1e-6)) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// The reference

struct ContextHolder {
  ExperimentConfig config;
  StageOptions stage;
  std::string run_directory;
  std::shared_ptr<Model> model;
  nlohmann::json report = nlohmann::json::object();
  std::function<std::shared_ptr<Model>()> make_model;
  StageContext context() { return StageContext{config, stage, 0, run_directory, model, nullptr, nullptr, make_model, report, nullptr}; }
};

TEST(LoraReferenceTest, AdaptersOffReferenceIsTheFrozenBaseWithoutACopy) {
  at::manual_seed(4);
  auto base = std::make_shared<TransformerModel>(tiny_config());
  auto policy = std::make_shared<TransformerModel>(tiny_config());
  copy_weights(*base, *policy);
  policy->enable_lora(lora_options(2, 4, {"q_proj", "k_proj", "v_proj", "o_proj"}));
  ContextHolder h;
  h.model = policy;
  int copies = 0;
  h.make_model = [&] {
    ++copies;
    return std::shared_ptr<Model>(std::make_shared<TransformerModel>(tiny_config()));
  };
  StageContext context = h.context();
  const std::shared_ptr<Model> reference = make_frozen_reference(context);
  EXPECT_EQ(copies, 0);  // no second model was built
  EXPECT_EQ(h.report.value("reference_model", ""), "policy with adapters disabled");
  EXPECT_TRUE(reference->parameters().empty());  // it holds no weights of its own

  // Train the adapters (as the loop would), then ask the reference: the frozen base's logits.
  randomize_b(*policy);
  policy->train();
  const at::Tensor ids = some_ids(37);
  const at::Tensor base_logits = logits_of(*base, ids);
  EXPECT_TRUE(at::equal(logits_of(*reference, ids), base_logits));
  // The policy is left as it was: adapters on, training mode, and it differs from the base.
  EXPECT_TRUE(policy->adapters_enabled());
  EXPECT_TRUE(policy->is_training());
  EXPECT_GT((logits_of(*policy, ids) - base_logits).abs().max().item<double>(), 1e-3);
  // The adapters' gradients are untouched by reference passes (no graph through the reference).
  ModelInput in;
  in.input_ids = ids;
  EXPECT_FALSE(reference->forward(in).logits.requires_grad());
  EXPECT_TRUE(policy->forward(in).logits.requires_grad());
}

TEST(LoraReferenceTest, TrainedAdaptersAtTheStageStartGetAFrozenCopy) {
  at::manual_seed(5);
  const LoraOptions options = lora_options(2, 4, {"q_proj", "v_proj"});
  auto policy = std::make_shared<TransformerModel>(tiny_config());
  policy->enable_lora(options);
  randomize_b(*policy);  // an earlier stage trained them
  ContextHolder h;
  h.model = policy;
  h.make_model = [&] {
    auto m = std::make_shared<TransformerModel>(tiny_config());
    m->enable_lora(options);
    return std::shared_ptr<Model>(m);
  };
  StageContext context = h.context();
  const std::shared_ptr<Model> reference = make_frozen_reference(context);
  EXPECT_FALSE(h.report.contains("reference_model"));
  EXPECT_FALSE(reference->parameters().empty());  // a copy
  const at::Tensor ids = some_ids(37);
  // The policy at the stage's start, adapters included (switching them off would give the base).
  EXPECT_TRUE(at::equal(logits_of(*reference, ids), logits_of(*policy, ids)));
}


// ---------------------------------------------------------------------------------------------
// Engine runs: DPO with LoRA on a pretrained base (written here) over token-id pairs.

TransformerConfig engine_config() {
  TransformerConfig c = tiny_config();
  c.vocab_size = 40;
  return c;
}

// The base model's folder and the pairs file, made once.
struct EngineData {
  std::string base;
  std::string pairs;
  std::vector<std::array<std::vector<int64_t>, 3>> rows;  // prompt, chosen, rejected
};

const EngineData& engine_data() {
  static const EngineData data = [] {
    EngineData d;
    const std::string dir = testing::make_temp_dir("lora-engine-data");
    d.base = dir + "/base";
    at::manual_seed(21);
    TransformerModel base(engine_config());
    {
      // Larger weights than HF's init (std 0.02) so that DPO's gradients are far from rounding.
      at::NoGradGuard no_grad;
      for (auto& item : base.named_parameters()) {
        if (item.key().find("norm") == std::string::npos) item.value().normal_(0.0, 0.25);
      }
    }
    base.save_pretrained(d.base);
    d.rows = {{{{1, 2, 3, 4, 5}, {6, 7, 8}, {9, 10}}},
              {{{11, 12}, {13, 14, 15, 16}, {17}}},
              {{{18, 19, 20}, {21}, {22, 23, 24, 25, 26}}},
              {{{27}, {28, 29}, {30, 31, 32}}}};
    std::string text;
    for (const auto& r : d.rows) {
      text += nlohmann::json{{"prompt_ids", r[0]}, {"chosen_ids", r[1]}, {"rejected_ids", r[2]}}.dump() + "\n";
    }
    d.pairs = testing::write_file(dir + "/pairs.jsonl", text);
    return d;
  }();
  return data;
}

const double kBeta = 0.5;
const int64_t kRank = 4;
const double kAlpha = 8;
const std::vector<std::string> kTargets = {"q_proj", "v_proj", "down_proj"};

std::string engine_yaml(int64_t steps, const std::string& optimizer, const std::string& extra_lora = "",
                        int64_t checkpoint_every = 0) {
  const EngineData& d = engine_data();
  return "name: lora-dpo\nseed: 7\nthreads: 1\n"
         "model: {plugin: transformer, pretrained: " + d.base + ",\n"
         "        lora: {rank: " + std::to_string(kRank) + ", alpha: 8, target_modules: [q_proj, v_proj, down_proj]" +
         extra_lora + "}}\n"
         "stages:\n"
         "  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.5}, data: {path: " + d.pairs +
         ", shuffle: false},\n     optimizer: " + optimizer + ", batch_size: 4, steps: " + std::to_string(steps) +
         ", log_every: 1" + (checkpoint_every > 0 ? ", checkpoint_every: " + std::to_string(checkpoint_every) : "") +
         "}\n";
}

std::string run_engine(const std::string& yaml, const std::string& tag) {
  const std::string dir = testing::make_temp_dir(tag);
  ExperimentRunner runner(parse_experiment(yaml, tag + ".yaml"), dir);
  runner.run();
  return dir;
}

// Sum of log p(response token | everything before) for one unpadded sequence: the test's own.
at::Tensor response_logp(TransformerModel& model, const std::vector<int64_t>& prompt,
                         const std::vector<int64_t>& response) {
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), response.begin(), response.end());
  ModelInput in;
  in.input_ids = at::tensor(ids, at::kLong).unsqueeze(0);
  const at::Tensor logp = at::log_softmax(model.forward(in).logits[0], -1);  // [T, V]
  at::Tensor total = at::zeros({}, at::kFloat);
  for (size_t t = prompt.size(); t < ids.size(); ++t) total = total + logp[int64_t(t) - 1][ids[t]];
  return total;
}

// The mean DPO loss over the pairs: -log sigmoid(beta ((c - c_ref) - (r - r_ref))).
at::Tensor dpo_loss(TransformerModel& model, const std::vector<double>& ref_chosen, const std::vector<double>& ref_rejected) {
  const EngineData& d = engine_data();
  at::Tensor loss = at::zeros({}, at::kFloat);
  for (size_t i = 0; i < d.rows.size(); ++i) {
    const at::Tensor h = (response_logp(model, d.rows[i][0], d.rows[i][1]) - ref_chosen[i]) -
                         (response_logp(model, d.rows[i][0], d.rows[i][2]) - ref_rejected[i]);
    loss = loss - at::log_sigmoid(kBeta * h);
  }
  return loss / double(d.rows.size());
}

// DPO on the full model, where the only trainable part is the low-rank factorisation of the target
// weights: W = W0 + s B A. The full model's gradient G = dL/dW gives the adapters' by the chain
// rule, dL/dA = s B^T G and dL/dB = s G A^T; plain SGD on (A, B). Compared with the engine's LoRA
// run (its A0 read from a one-step run: B0 = 0 leaves A unchanged by the first step).
TEST(LoraEngineTest, LoraDpoEqualsFullDpoRestrictedToTheAdapter) {
  const double lr = 0.5;
  const double s = kAlpha / kRank;
  const std::string sgd = "{name: sgd, lr: 0.5}";
  const std::string one = run_engine(engine_yaml(1, sgd), "lora-dpo-1");
  const std::string three = run_engine(engine_yaml(3, sgd), "lora-dpo-3");
  const auto step1 = read_model_pt(one + "/checkpoints/dpo/model.pt");
  const auto step3 = read_model_pt(three + "/checkpoints/dpo/model.pt");
  const nlohmann::json run = nlohmann::json::parse(testing::read_file(three + "/run.json"));
  EXPECT_EQ(run["stages"][0].value("reference_model", ""), "policy with adapters disabled") << run.dump();

  TransformerModel full(engine_config());
  full.load_pretrained(engine_data().base);
  std::vector<std::string> targets;
  for (const auto& [name, value] : step1) {
    if (name.size() > 14 && name.compare(name.size() - 14, 14, ".lora_A.weight") == 0) {
      targets.push_back(name.substr(0, name.size() - 14));
    }
  }
  ASSERT_EQ(targets.size(), kTargets.size() * 2);  // 2 layers
  auto params = full.named_parameters();
  std::map<std::string, at::Tensor> w0, a, b;
  for (const auto& t : targets) {
    w0[t] = params[t + ".weight"].detach().clone();
    a[t] = step1.at(t + ".lora_A.weight").clone();
    b[t] = at::zeros({w0[t].size(0), kRank});
  }
  // The reference: the base model's log-probs.
  std::vector<double> ref_c, ref_r;
  {
    at::NoGradGuard no_grad;
    for (const auto& r : engine_data().rows) {
      ref_c.push_back(response_logp(full, r[0], r[1]).item<double>());
      ref_r.push_back(response_logp(full, r[0], r[2]).item<double>());
    }
  }
  for (int step = 1; step <= 3; ++step) {
    {
      at::NoGradGuard no_grad;
      for (const auto& t : targets) params[t + ".weight"].copy_(w0[t] + s * at::matmul(b[t], a[t]));
    }
    for (auto& p : full.parameters()) p.mutable_grad() = at::Tensor();
    dpo_loss(full, ref_c, ref_r).backward();
    std::map<std::string, at::Tensor> next_a, next_b;
    for (const auto& t : targets) {
      const at::Tensor g = params[t + ".weight"].grad();
      next_a[t] = a[t] - lr * s * at::matmul(b[t].t(), g);
      next_b[t] = b[t] - lr * s * at::matmul(g, a[t].t());
    }
    a = next_a;
    b = next_b;
    if (step == 1) {
      for (const auto& t : targets) {
        const at::Tensor engine_b = step1.at(t + ".lora_B.weight");
        EXPECT_GT(max_abs(b[t]), 1e-4) << t;  // a real update
        EXPECT_LT(max_abs(engine_b - b[t]), 1e-4 * max_abs(b[t])) << t << " after step 1";
      }
    }
  }
  for (const auto& t : targets) {
    const at::Tensor engine_a = step3.at(t + ".lora_A.weight");
    const at::Tensor engine_b = step3.at(t + ".lora_B.weight");
    EXPECT_GT(max_abs(a.at(t) - step1.at(t + ".lora_A.weight")), 1e-6) << t << ": A moved after step 1";
    EXPECT_LT(max_abs(engine_a - a.at(t)), 1e-4 * max_abs(a.at(t))) << t << " A after step 3";
    EXPECT_LT(max_abs(engine_b - b.at(t)), 1e-4 * max_abs(b.at(t))) << t << " B after step 3";
  }
  // Only the adapters changed: every other tensor is the pretrained base, bit for bit.
  TransformerModel pristine(engine_config());
  pristine.load_pretrained(engine_data().base);
  int64_t compared = 0;
  for (const auto& item : pristine.named_parameters()) {
    ASSERT_TRUE(step3.count(item.key())) << item.key();
    EXPECT_TRUE(at::equal(step3.at(item.key()), item.value())) << item.key() << " changed";
    ++compared;
  }
  EXPECT_EQ(compared + int64_t(2 * targets.size()), int64_t(step3.size()));
}

// Reads a safetensors file without the project's reader: 8-byte little-endian header length, the
// JSON header, the tensor bytes.
struct RawSafetensors {
  nlohmann::json header;
  std::string data;
};
RawSafetensors read_raw_safetensors(const std::string& path) {
  const std::string bytes = testing::read_file(path);
  EXPECT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[size_t(i)]);
  EXPECT_LE(8 + n, bytes.size());
  return {nlohmann::json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

TEST(LoraEngineTest, CheckpointHoldsPeftAdapterFilesReadIndependently) {
  const std::string dir = run_engine(engine_yaml(2, "{lr: 1.0e-2}"), "lora-peft-files");
  const std::string ckpt = dir + "/checkpoints/dpo";
  const auto model = read_model_pt(ckpt + "/model.pt");

  const nlohmann::json config = nlohmann::json::parse(testing::read_file(ckpt + "/adapter_config.json"));
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], kRank);
  EXPECT_TRUE(config["lora_alpha"].is_number_integer()) << config["lora_alpha"];  // 8, as PEFT writes it
  EXPECT_EQ(config["lora_alpha"], kAlpha);
  EXPECT_EQ(config["lora_dropout"], 0.0);
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["target_modules"], nlohmann::json(kTargets));
  EXPECT_EQ(config["base_model_name_or_path"], engine_data().base);

  const RawSafetensors raw = read_raw_safetensors(ckpt + "/adapter_model.safetensors");
  const TransformerConfig c = engine_config();
  const int64_t d = c.head_size();
  const std::map<std::string, std::pair<int64_t, int64_t>> in_out = {
      {"self_attn.q_proj", {c.hidden_size, c.num_attention_heads * d}},
      {"self_attn.v_proj", {c.hidden_size, c.num_key_value_heads * d}},
      {"mlp.down_proj", {c.intermediate_size, c.hidden_size}}};
  size_t tensors = 0;
  uint64_t covered = 0;
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    for (const auto& [module, dims] : in_out) {
      const std::string inner = "model.layers." + std::to_string(layer) + "." + module;
      for (const char* which : {"lora_A", "lora_B"}) {
        const std::string ab = which;
        const std::string name = "base_model.model." + inner + "." + ab + ".weight";
        ASSERT_TRUE(raw.header.contains(name)) << name << " in " << raw.header.dump();
        const nlohmann::json& e = raw.header[name];
        EXPECT_EQ(e["dtype"], "F32") << name;
        const std::vector<int64_t> shape = e["shape"];
        const std::vector<int64_t> expected =
            ab == "lora_A" ? std::vector<int64_t>{kRank, dims.first} : std::vector<int64_t>{dims.second, kRank};
        EXPECT_EQ(shape, expected) << name;
        const uint64_t begin = e["data_offsets"][0], end = e["data_offsets"][1];
        ASSERT_EQ(end - begin, uint64_t(expected[0] * expected[1] * 4)) << name;
        ASSERT_LE(end, raw.data.size()) << name;
        covered += end - begin;
        // The bytes are the checkpoint's tensor (little-endian float32 on this machine).
        const at::Tensor t = model.at(inner + "." + ab + ".weight").contiguous();
        EXPECT_EQ(std::memcmp(raw.data.data() + begin, t.data_ptr<float>(), end - begin), 0) << name;
        ++tensors;
      }
    }
  }
  EXPECT_EQ(covered, raw.data.size());  // nothing else in the file
  EXPECT_EQ(raw.header.size(), tensors + (raw.header.contains("__metadata__") ? 1 : 0));
  // The files are part of the checkpoint: state.json lists them with their sizes.
  const nlohmann::json state = nlohmann::json::parse(testing::read_file(ckpt + "/state.json"));
  EXPECT_EQ(state["files"]["adapter_model.safetensors"]["bytes"],
            testing::read_file(ckpt + "/adapter_model.safetensors").size());
  EXPECT_TRUE(state["files"].contains("adapter_config.json"));
}

TEST(LoraEngineTest, CheckpointMergesForExport) {
  const std::string dir = run_engine(engine_yaml(2, "{lr: 5.0e-2}"), "lora-merge-export");
  const std::string ckpt = dir + "/checkpoints/dpo";
  auto build = [] {
    auto m = std::make_shared<TransformerModel>(engine_config());
    m->load_pretrained(engine_data().base);
    m->enable_lora(lora_options(kRank, kAlpha, kTargets));
    return m;
  };
  const auto trained = build();
  load_model_weights(ckpt, *trained);
  ASSERT_FALSE(trained->adapters_are_identity());
  const at::Tensor ids = some_ids(40);
  const at::Tensor expected = logits_of(*trained, ids);

  const auto merged = build();
  EXPECT_TRUE(load_merged_weights(ckpt, *merged));
  EXPECT_TRUE(merged->adapters_are_identity());
  EXPECT_TRUE(at::allclose(logits_of(*merged, ids), expected, 1e-5, 1e-5));
  // Written as plain weights and read by a model without adapters: the trained function.
  merged->save_pretrained(dir + "/export");
  TransformerModel plain(engine_config());
  plain.load_pretrained(dir + "/export");
  EXPECT_TRUE(at::allclose(logits_of(plain, ids), expected, 1e-5, 1e-5));
  // And it is not the base model.
  TransformerModel base(engine_config());
  base.load_pretrained(engine_data().base);
  EXPECT_GT(max_abs(logits_of(base, ids) - expected), 1e-4);
  // The Hugging Face export of the model with its adapters still attached (what `prefengine
  // export` and a stage's `export:` do) folds them in too and writes no adapter tensor.
  trained->export_hugging_face(dir + "/hf", R"({"dtype": "float32"})");
  const std::string header = testing::read_file(dir + "/hf/model.safetensors").substr(0, 1 << 16);
  EXPECT_EQ(header.find("lora_"), std::string::npos);
  TransformerModel exported(engine_config());
  exported.load_pretrained(dir + "/hf");
  EXPECT_TRUE(at::allclose(logits_of(exported, ids), expected, 1e-5, 1e-5));
  EXPECT_FALSE(trained->adapters_are_identity());  // the model itself is left as it was
}

TEST(LoraEngineTest, ConfigErrorsNameTheKeyAndLine) {
  std::string yaml = engine_yaml(1, "{lr: 1.0e-2}");
  yaml.replace(yaml.find("alpha: 8"), 8, "alfa: 8");
  try {
    validate_experiment(parse_experiment(yaml, "lora.yaml"));
    FAIL() << "an unknown lora key was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("lora.yaml:", 0), 0u) << message;
    EXPECT_NE(message.find("lora.alfa"), std::string::npos) << message;
    EXPECT_NE(message.find("lora.alpha"), std::string::npos) << message;  // the nearest known key
  }
  yaml = engine_yaml(1, "{lr: 1.0e-2}");
  yaml.replace(yaml.find("v_proj, down_proj"), 17, "v_proj, mlp");
  try {
    validate_experiment(parse_experiment(yaml, "lora.yaml"));
    FAIL() << "an unknown target module was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("lora.yaml:", 0), 0u) << message;
    EXPECT_NE(message.find("lora.target_modules"), std::string::npos) << message;
    EXPECT_NE(message.find("'mlp'"), std::string::npos) << message;
  }
}

TEST(LoraEngineTest, ResumeKeepsTheAdaptersExactly) {
  // Adam and adapter dropout: the resumed run must restore the moments and the generator too.
  const std::string yaml = engine_yaml(6, "{lr: 1.0e-2}", ", dropout: 0.2", 2);
  const std::string whole = run_engine(yaml, "lora-resume-whole");
  const std::string dir = testing::make_temp_dir("lora-resume");
  setenv("PREFENGINE_STOP_AFTER_STEP", "4", 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(yaml, "resume.yaml"), dir).run(), std::runtime_error);
  unsetenv("PREFENGINE_STOP_AFTER_STEP");
  ExperimentRunner resumed(load_experiment(dir + "/config.yaml"), dir);
  resumed.set_resume(true);
  EXPECT_EQ(resumed.run().global_steps, 6);
  const auto a = read_model_pt(whole + "/checkpoints/dpo/model.pt");
  const auto b = read_model_pt(dir + "/checkpoints/dpo/model.pt");
  ASSERT_EQ(a.size(), b.size());
  int adapters = 0;
  for (const auto& [name, tensor] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(at::equal(tensor, b.at(name))) << name;
    if (is_lora_parameter(name)) ++adapters;
  }
  EXPECT_EQ(adapters, 12);
  EXPECT_EQ(testing::read_file(whole + "/checkpoints/dpo/adapter_model.safetensors"),
            testing::read_file(dir + "/checkpoints/dpo/adapter_model.safetensors"));
  const auto rows_a = testing::read_metrics(whole), rows_b = testing::read_metrics(dir);
  ASSERT_EQ(rows_a.size(), rows_b.size());
  for (size_t i = 0; i < rows_a.size(); ++i) EXPECT_EQ(rows_a[i]["loss"], rows_b[i]["loss"]) << "row " << i;
}

}  // namespace
}  // namespace prefengine
