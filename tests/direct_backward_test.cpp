// The direct step (a model outside autograd: DirectBackward, prefengine/model.h; losses with their
// gradient in closed form: PairwiseGradient, SftGradient): the toy MLP's logits and gradients
// outside autograd, the token log-probs' direct forward and backward, and the closed-form losses'
// values and gradients, each against its autograd path, bit for bit (the same kernels in the same
// order); and whole
// runs with `direct_backward: false` (autograd through the model) against the default (the model
// outside autograd): the same metrics and the same checkpoints, byte for byte, over sft stages
// (target distributions and multi-token completions), the DPO family with gradient accumulation
// and on multi-token responses, IPO, flex-beta, and a reward model (its scalar head keeps the
// autograd path).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "engine/train/sequence_batch.h"
#include "engine/train/stage_unit.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/sft_loss.h"
#include "prefengine/model.h"
#include "prefengine/plugin_loader.h"
#include "test_util.h"
#include "toy_mlp_model.h"

namespace prefengine {
namespace {

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && at::equal(a, b);
}

std::shared_ptr<Model> toy_model(PluginLoader& loader) {
  PluginOptions options;
  options.set_scalar("prompts", "4");
  options.set_scalar("responses", "10");
  options.set_scalar("hidden", "16");
  options.set_scalar("layers", "3");
  return loader.create_model("toy_mlp", options);
}

// Inputs of one token (the paper's prompt -> response case) and of three (a prompt and a bag of
// response tokens, one row padded).
std::vector<ModelInput> inputs() {
  at::manual_seed(21);
  std::vector<ModelInput> out(2);
  out[0].input_ids = at::randint(0, 4, {7, 1}, at::kLong);
  out[1].input_ids = at::cat({at::randint(0, 4, {5, 1}, at::kLong), at::randint(0, 10, {5, 2}, at::kLong)}, 1);
  out[1].attention_mask = at::ones({5, 3}, at::kLong);
  out[1].attention_mask[2][2] = 0;
  return out;
}

TEST(DirectBackwardTest, ToyMlpHasTheCapability) {
  PluginLoader loader;
  std::shared_ptr<Model> model = toy_model(loader);
  EXPECT_NE(dynamic_cast<DirectBackward*>(model.get()), nullptr);
}

// The toy MLP's direct BLAS calls against the ATen operators they stand in for, bit for bit, at
// the toy's shapes (14 -> 64 -> 64 -> 10) and others, batches of 1 to 33 rows; and a layout they
// do not take (a transposed input) goes through ATen.
TEST(DirectBackwardTest, ToyMatrixProductsEqualAtensOperators) {
  using plugins::models::toy_add_weight_grad;
  using plugins::models::toy_input_grad;
  using plugins::models::toy_linear;
  at::manual_seed(25);
  for (const int64_t rows : {1, 5, 32, 33}) {
    for (const auto& [in, out] : std::vector<std::pair<int64_t, int64_t>>{{14, 64}, {64, 64}, {64, 10}, {3, 7}}) {
      const at::Tensor x = at::randn({rows, in}), w = at::randn({out, in}), b = at::randn({out});
      const at::Tensor g = at::randn({rows, out});
      const std::string what = std::to_string(rows) + "x" + std::to_string(in) + "->" + std::to_string(out);
      EXPECT_TRUE(same_bits(toy_linear(x, w, b), at::addmm(b, x, w.t()))) << what;
      at::Tensor grad = at::randn({out, in});
      at::Tensor expected = grad.clone();
      expected.addmm_(g.t(), x);
      toy_add_weight_grad(grad, g, x);
      EXPECT_TRUE(same_bits(grad, expected)) << what;
      EXPECT_TRUE(same_bits(toy_input_grad(g, w), at::mm(g, w))) << what;
    }
  }
  const at::Tensor xt = at::randn({14, 6}).t(), w = at::randn({64, 14}), b = at::randn({64});
  EXPECT_TRUE(same_bits(toy_linear(xt, w, b), at::addmm(b, xt, w.t())));
}

TEST(DirectBackwardTest, ForwardDirectGivesForwardsLogitsWithoutAGraph) {
  PluginLoader loader;
  std::shared_ptr<Model> model = toy_model(loader);
  auto& direct = dynamic_cast<DirectBackward&>(*model);
  for (const ModelInput& input : inputs()) {
    const at::Tensor general = model->forward(input).logits;
    const at::Tensor fast = direct.forward_direct(input);
    EXPECT_TRUE(general.requires_grad());
    EXPECT_FALSE(fast.requires_grad());
    EXPECT_FALSE(fast.grad_fn());
    EXPECT_TRUE(same_bits(fast, general.detach())) << "length " << input.input_ids.size(1);
  }
}

// The gradients backward_direct adds equal autograd's through forward(), bit for bit: into the
// engine's kind of buffer (a zeroed .grad() that exists: the same buffer, added in place), with
// no .grad() yet (stored), and accumulated over two passes.
TEST(DirectBackwardTest, BackwardDirectAddsAutogradsGradients) {
  PluginLoader loader;
  std::shared_ptr<Model> model = toy_model(loader);
  auto& direct = dynamic_cast<DirectBackward&>(*model);
  std::vector<at::Tensor> params = model->parameters();
  ASSERT_EQ(params.size(), 6u);
  for (const ModelInput& input : inputs()) {
    const at::Tensor weights = at::randn({input.input_ids.size(0), input.input_ids.size(1), 10});
    // autograd through the model (its FusedMlp node), no .grad() yet
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    (model->forward(input).logits * weights).sum().backward();
    std::vector<at::Tensor> expected;
    for (auto& p : params) expected.push_back(p.grad().clone());

    // d(sum(logits * weights))/dlogits = weights
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    (void)direct.forward_direct(input);
    direct.backward_direct(weights);
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_TRUE(params[i].grad().defined()) << "parameter " << i;
      EXPECT_TRUE(same_bits(params[i].grad(), expected[i])) << "no buffer, parameter " << i;
      params[i].mutable_grad() = at::zeros_like(params[i]);
    }
    std::vector<void*> buffers;
    for (auto& p : params) buffers.push_back(p.grad().data_ptr());
    for (int pass = 1; pass <= 2; ++pass) {
      (void)direct.forward_direct(input);
      direct.backward_direct(weights);
      for (size_t i = 0; i < params.size(); ++i) {
        EXPECT_EQ(params[i].grad().data_ptr(), buffers[i]) << "parameter " << i << ": the buffer was replaced";
        EXPECT_TRUE(same_bits(params[i].grad(), expected[i] * pass)) << "pass " << pass << ", parameter " << i;
      }
    }
  }
}

// A frozen parameter gets no gradient; a backward without its forward is refused; the scalar head is
// not computed outside autograd.
TEST(DirectBackwardTest, FrozenParametersMisuseAndTheScalarHead) {
  PluginLoader loader;
  std::shared_ptr<Model> model = toy_model(loader);
  auto& direct = dynamic_cast<DirectBackward&>(*model);
  std::vector<at::Tensor> params = model->parameters();
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  params[0].requires_grad_(false);
  const ModelInput input = inputs()[0];
  (void)direct.forward_direct(input);
  direct.backward_direct(at::ones({7, 1, 10}));
  EXPECT_FALSE(params[0].grad().defined());
  EXPECT_TRUE(params[1].grad().defined());
  EXPECT_THROW(direct.backward_direct(at::ones({7, 1, 10})), std::logic_error);  // its forward was used up
  model->add_scalar_head();
  ModelInput scalar = input;
  scalar.want_scalar = true;
  EXPECT_THROW((void)direct.forward_direct(scalar), std::invalid_argument);
}

// The engine's helpers: model_logits gives a leaf that requires grad, and finish_direct_backward
// sends its gradient into the parameters (what autograd through forward() gives) and drops it.
TEST(DirectBackwardTest, EngineLeafCarriesTheGradientIntoTheModel) {
  PluginLoader loader;
  std::shared_ptr<Model> model = toy_model(loader);
  std::vector<at::Tensor> params = model->parameters();
  const ModelInput input = inputs()[1];
  const at::Tensor ids = input.input_ids;
  const at::Tensor mask = input.attention_mask.to(at::kFloat);
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  sequence_logps(model->forward(input).logits, ids, mask).sum().backward();
  std::vector<at::Tensor> expected;
  for (auto& p : params) {
    expected.push_back(p.grad().clone());
    p.mutable_grad() = at::zeros_like(p);
  }
  at::Tensor leaf;
  const at::Tensor logits = model_logits(*model, input, &leaf);
  ASSERT_TRUE(leaf.defined());
  EXPECT_TRUE(leaf.is_leaf());
  EXPECT_TRUE(leaf.requires_grad());
  sequence_logps(logits, ids, mask).sum().backward();
  finish_direct_backward(*model, leaf);
  EXPECT_FALSE(leaf.defined());
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(same_bits(params[i].grad(), expected[i])) << "parameter " << i;
  // without `direct`, or with the scalar head wanted, the model's own forward (and no leaf)
  EXPECT_TRUE(model_logits(*model, input, nullptr).grad_fn() != nullptr);
}

// DirectSequenceLogps: sequence_logps's values, and from dL/dlogps the dL/dlogits of its autograd
// node, bit for bit: one scored position (the toy's rows) and several, masked.
TEST(DirectBackwardTest, DirectSequenceLogpsEqualsTheAutogradNode) {
  at::manual_seed(22);
  for (const int64_t length : {2, 5}) {
    const int64_t n = 6, vocab = 10;
    const at::Tensor logits = at::randn({n, length - 1, vocab}) * 3;
    const at::Tensor ids = at::randint(0, vocab, {n, length}, at::kLong);
    at::Tensor mask = at::ones({n, length});
    mask.select(1, 0).zero_();
    mask[2][length - 1] = 0;
    const at::Tensor g = at::randn({n});
    at::Tensor leaf = logits.clone().requires_grad_(true);
    const at::Tensor general = sequence_logps(leaf, ids, mask);
    (general * g).sum().backward();
    DirectSequenceLogps direct;
    const at::Tensor fast = direct.forward(logits, ids, mask);
    EXPECT_TRUE(same_bits(fast, general.detach())) << "length " << length;
    // (general * g).sum()'s gradient in general is g itself
    EXPECT_TRUE(same_bits(direct.backward(g), leaf.grad())) << "length " << length;
    EXPECT_THROW((void)direct.backward(g), std::logic_error);  // once per forward
  }
}

StepInfo micro_batches(int64_t k) {
  StepInfo info;
  info.micro_batches = k;
  return info;
}

// The loop's backward of a micro-batch's loss: autograd from it, divided by k micro-batches.
void loop_backward(const at::Tensor& loss, int64_t k) {
  if (k == 1) loss.backward();
  else (loss / static_cast<double>(k)).backward();
}

// The closed-form pairwise losses: pairwise_with_gradient gives pairwise()'s loss and metrics,
// and the gradients autograd gives through pairwise() in the loop's backward, bit for bit (one
// micro-batch, and three: a scale 1/3 that float cannot hold exactly).
TEST(DirectBackwardTest, ClosedFormPairwiseLossesEqualAutograd) {
  PluginLoader loader;
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> losses = {
      {"dpo", {{"beta", "0.1"}}},
      {"dpo", {{"beta", "0.5"}, {"label_smoothing", "0.2"}}},
      {"dpo", {{"beta", "0.3"}, {"reference_free", "true"}}},
      {"flex_dpo", {{"beta_chosen", "0.1"}, {"beta_rejected", "0.4"}}},
      {"adaptive_dpo", {{"beta_chosen", "0.2"}, {"beta_rejected", "0.05"}}}};
  at::manual_seed(23);
  const int64_t b = 7;
  const at::Tensor chosen = at::randn({b}) * 5 - 10, rejected = at::randn({b}) * 5 - 12;
  const at::Tensor ref_chosen = at::randn({b}) * 5 - 10, ref_rejected = at::randn({b}) * 5 - 11;
  for (const auto& [name, settings] : losses) {
    PluginOptions options;
    for (const auto& [key, value] : settings) options.set_scalar(key, value);
    std::shared_ptr<Loss> loss = loader.create_loss(name, options);
    auto& pairwise = dynamic_cast<PairwiseLoss&>(*loss);
    auto* closed = dynamic_cast<PairwiseGradient*>(loss.get());
    ASSERT_NE(closed, nullptr) << name;
    const bool refs = loss->requirements().reference_logps;
    for (const int64_t k : {1, 3}) {
      for (const bool metrics : {false, true}) {
        PairwiseBatch batch;
        batch.chosen_logps = chosen.clone().requires_grad_(true);
        batch.rejected_logps = rejected.clone().requires_grad_(true);
        if (refs) {
          batch.ref_chosen_logps = ref_chosen;
          batch.ref_rejected_logps = ref_rejected;
        }
        batch.chosen_lengths = at::full({b}, 3.0f);
        batch.rejected_lengths = at::full({b}, 4.0f);
        batch.want_metrics = metrics;
        const LossOutput general = pairwise.pairwise(batch);
        loop_backward(general.loss, k);
        PairwiseBatch plain = batch;
        plain.chosen_logps = chosen;
        plain.rejected_logps = rejected;
        at::Tensor grad_w, grad_l;
        const LossOutput fast = closed->pairwise_with_gradient(plain, loss_grad_output(micro_batches(k)), grad_w, grad_l);
        const std::string what = name + " " + settings.front().second + ", k " + std::to_string(k);
        EXPECT_TRUE(same_bits(fast.loss, general.loss.detach())) << what;
        EXPECT_TRUE(same_bits(grad_w, batch.chosen_logps.grad())) << what << "\n" << grad_w << batch.chosen_logps.grad();
        EXPECT_TRUE(same_bits(grad_l, batch.rejected_logps.grad())) << what;
        ASSERT_EQ(fast.metrics.size(), general.metrics.size()) << what;
        for (size_t i = 0; i < fast.metrics.size(); ++i) {
          EXPECT_EQ(fast.metrics[i].first, general.metrics[i].first);
          EXPECT_TRUE(same_bits(fast.metrics[i].second, general.metrics[i].second)) << fast.metrics[i].first;
        }
      }
    }
  }
}

// The sft loss's closed form against autograd through sft(), bit for bit: a batch of target
// distributions (the toy's rows) and one of completions (lengths 0 count as 1), one micro-batch
// and three; a mixed batch is refused (the engine never sends one).
TEST(DirectBackwardTest, ClosedFormSftLossEqualsAutograd) {
  PluginLoader loader;
  PluginOptions options;
  std::shared_ptr<Loss> loss = loader.create_loss("sft", options);
  auto& sft = dynamic_cast<SftLoss&>(*loss);
  auto* closed = dynamic_cast<SftGradient*>(loss.get());
  ASSERT_NE(closed, nullptr);
  at::manual_seed(24);
  const int64_t b = 5, vocab = 10;
  const at::Tensor logits = at::randn({b, vocab}) * 2;
  const at::Tensor targets = at::softmax(at::randn({b, vocab}), -1);
  const at::Tensor logps = at::randn({b}) * 3 - 8;
  const at::Tensor lengths = at::tensor({3.0f, 1.0f, 0.0f, 7.0f, 2.0f});
  for (const int64_t k : {1, 3}) {
    for (const bool distribution : {true, false}) {
      SftBatch batch;
      batch.want_metrics = false;
      batch.has_distribution = at::full({b}, distribution, at::kBool);
      if (distribution) {
        batch.next_token_logits = logits.clone().requires_grad_(true);
        batch.target_distribution = targets;
        batch.lengths = at::zeros({b});
      } else {
        batch.logps = logps.clone().requires_grad_(true);
        batch.lengths = lengths;
      }
      const LossOutput general = sft.sft(batch);
      loop_backward(general.loss, k);
      SftBatch plain = batch;
      if (distribution) plain.next_token_logits = logits;
      else plain.logps = logps;
      at::Tensor grad_next, grad_logps;
      const LossOutput fast = closed->sft_with_gradient(plain, loss_grad_output(micro_batches(k)), grad_next, grad_logps);
      EXPECT_TRUE(same_bits(fast.loss, general.loss.detach())) << "distribution " << distribution << ", k " << k;
      if (distribution) {
        EXPECT_TRUE(same_bits(grad_next, batch.next_token_logits.grad())) << "k " << k;
      } else {
        EXPECT_TRUE(same_bits(grad_logps, batch.logps.grad())) << "k " << k;
      }
    }
  }
  SftBatch mixed;
  mixed.has_distribution = at::tensor({1, 0}, at::kLong).to(at::kBool);
  at::Tensor g1, g2;
  EXPECT_THROW((void)closed->sft_with_gradient(mixed, at::ones({}), g1, g2), std::invalid_argument);
}

// Every stage kind the toy model trains with: distribution and multi-token completion targets,
// DPO with two micro-batches per update, DPO+SFT on multi-token responses, IPO, flex-beta, and a
// reward model (its scalar head keeps the autograd path).
const char* const kExperiment = R"(name: direct
seed: 5
threads: 1
model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 32, layers: 3}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 30, log_every: 7}
  - {name: seq, kind: sft, data: {path: DIR/seq_sft.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 3, steps: 12, log_every: 4}
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     eval: {path: configs/toy/data/pairs_heldout.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 5, grad_accum: 3, steps: 25, log_every: 5}
  - {name: seqdpo, kind: pairwise, loss: {plugin: dpo_sft, beta: 0.2, sft_weight: 0.5}, data: {path: DIR/seq_pairs.jsonl},
     optimizer: {lr: 1.0e-3}, batch_size: 4, steps: 12, log_every: 3}
  - {name: ipo, kind: pairwise, loss: {plugin: ipo, tau: 0.1}, data: {path: configs/toy/data/pairs.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 16, steps: 15, log_every: 5}
  - {name: flex, kind: pairwise, loss: {plugin: flex_dpo, beta_chosen: 0.1, beta_rejected: 0.3}, data: {path: configs/toy/data/pairs.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 16, steps: 15, log_every: 5}
  - {name: adaptive, kind: pairwise, loss: {plugin: adaptive_dpo, beta_chosen: 0.1}, data: {path: configs/toy/data/pairs.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 16, steps: 15, log_every: 5}
  - {name: rm, kind: pairwise, loss: {plugin: rm}, data: {path: configs/toy/data/pairs.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 16, steps: 10, log_every: 5}
)";

std::string experiment(const std::string& dir) {
  testing::write_file(dir + "/seq_sft.jsonl",
                      "{\"prompt_ids\": [0], \"completion_ids\": [1, 2]}\n{\"prompt_ids\": [1], \"completion_ids\": [3]}\n"
                      "{\"prompt_ids\": [2], \"completion_ids\": [4, 5, 6]}\n{\"prompt_ids\": [3], \"completion_ids\": [7, 7]}\n");
  testing::write_file(dir + "/seq_pairs.jsonl",
                      "{\"prompt_ids\": [0], \"chosen_ids\": [1, 2], \"rejected_ids\": [3]}\n"
                      "{\"prompt_ids\": [1], \"chosen_ids\": [3], \"rejected_ids\": [4, 5, 6]}\n"
                      "{\"prompt_ids\": [2], \"chosen_ids\": [4, 5], \"rejected_ids\": [8, 9]}\n"
                      "{\"prompt_ids\": [3], \"chosen_ids\": [7], \"rejected_ids\": [0]}\n");
  std::string text = kExperiment;
  for (size_t at = text.find("DIR"); at != std::string::npos; at = text.find("DIR")) text.replace(at, 3, dir);
  return testing::write_file(dir + "/exp.yaml", text);
}

TEST(DirectBackwardTest, RunsOutsideAutogradEqualAutogradRunsByteForByte) {
  const std::string dir = testing::make_temp_dir("direct_runs");
  const std::string path = experiment(dir);
  const auto direct = testing::run_cli("run " + path + " --output " + dir + "/direct --log-level warn");
  ASSERT_EQ(direct.code, 0) << direct.output;
  const auto autograd =
      testing::run_cli("run " + path + " --set direct_backward=false --output " + dir + "/autograd --log-level warn");
  ASSERT_EQ(autograd.code, 0) << autograd.output;
  const auto rows_a = testing::read_metrics(dir + "/direct");
  const auto rows_b = testing::read_metrics(dir + "/autograd");
  ASSERT_EQ(rows_a.size(), rows_b.size());
  ASSERT_GE(rows_a.size(), 20u);
  for (size_t i = 0; i < rows_a.size(); ++i) {
    EXPECT_EQ(testing::without_timing(rows_a[i]), testing::without_timing(rows_b[i])) << "row " << i;
  }
  // the runs moved the model (a run that changed nothing would also be "equal")
  const auto first = testing::read_metrics(dir + "/direct", "dpo").front();
  const auto last = testing::read_metrics(dir + "/direct", "dpo").back();
  EXPECT_NE(first["logps/rejected"], last["logps/rejected"]);
  EXPECT_TRUE(last.contains("grad/rejected_log10"));
  EXPECT_TRUE(testing::read_metrics(dir + "/direct", "seqdpo").back().contains("logps/chosen_per_token"));
  // the path each stage took (run.json): the closed-form losses run without autograd on the steps
  // that log nothing; the others run autograd after the logits; the reward model's head, autograd
  const auto status = nlohmann::json::parse(testing::read_file(dir + "/direct/run.json"));
  const std::map<std::string, std::string> expected = {
      {"sft", "direct"},  {"seq", "direct"},          {"dpo", "direct"},       {"seqdpo", "direct_model"},
      {"ipo", "direct_model"}, {"flex", "direct"}, {"adaptive", "direct"}, {"rm", "autograd"}};
  ASSERT_EQ(status["stages"].size(), expected.size());
  for (const auto& stage : status["stages"]) {
    EXPECT_EQ(stage["backward"], expected.at(stage["name"].get<std::string>())) << stage["name"];
  }
  for (const auto& stage : nlohmann::json::parse(testing::read_file(dir + "/autograd/run.json"))["stages"]) {
    EXPECT_EQ(stage["backward"], "autograd") << stage["name"];
  }
  for (const char* stage : {"sft", "seq", "dpo", "seqdpo", "ipo", "flex", "adaptive", "rm"}) {
    for (const char* file : {"model.pt", "optimizer.pt"}) {
      const std::string a = testing::read_file(dir + "/direct/checkpoints/" + stage + "/" + file);
      ASSERT_FALSE(a.empty()) << stage << "/" << file;
      EXPECT_TRUE(a == testing::read_file(dir + "/autograd/checkpoints/" + stage + "/" + file)) << stage << "/" << file;
    }
  }
  EXPECT_NE(testing::read_file(dir + "/autograd/config.yaml").find("direct_backward: false"), std::string::npos);
}

}  // namespace
}  // namespace prefengine
