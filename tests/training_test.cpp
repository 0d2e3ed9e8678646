// The training loop end to end on the toy model: Figure 2, seeds, gradient accumulation,
// failures that keep metrics and checkpoints, and the numeric building blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include <boost/filesystem.hpp>
#include <torch/nn/module.h>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/flat_optimizer.h"
#include "engine/train/run_directory.h"
#include "engine/train/sequence_batch.h"
#include "test_util.h"

namespace prefengine {
namespace {

using testing::read_metrics;

std::string run_config(const std::string& yaml, const std::string& tag,
                       const std::vector<std::string>& overrides = {}) {
  ExperimentConfig config = parse_experiment(yaml, tag + ".yaml", overrides);
  const std::string dir = testing::make_temp_dir(tag);
  ExperimentRunner runner(config, dir);
  runner.run();
  return dir;
}

const char* kShort = R"(name: short
seed: 1
threads: 1
model: {plugin: toy_mlp, hidden: 16}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 40, log_every: 10}
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     optimizer: {lr: 1.0e-3}, batch_size: 6, steps: 40, log_every: 5}
)";

TEST(TrainingTest, Figure2DynamicsFromTheShippedConfig) {
  ExperimentConfig config = load_experiment(testing::source_path("configs/toy/dpo.yaml"));
  const std::string dir = testing::make_temp_dir("figure2");
  ExperimentRunner(config, dir).run();
  const auto rows = read_metrics(dir, "dpo");
  ASSERT_GT(rows.size(), 50u);
  const double first_chosen = rows.front()["probs/chosen"];
  size_t peak = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i]["probs/chosen"].get<double>() > rows[peak]["probs/chosen"].get<double>()) peak = i;
  }
  const double peak_chosen = rows[peak]["probs/chosen"];
  const double final_chosen = rows.back()["probs/chosen"];
  // 1. the chosen probability rises, then falls
  EXPECT_GT(peak_chosen, first_chosen + 0.2);
  EXPECT_LT(peak, rows.size() / 2);
  EXPECT_LT(final_chosen, peak_chosen - 0.2);
  // 2. the rejected probability goes to ~0 while |dL/dpi_l| grows by orders of magnitude
  EXPECT_LT(rows.back()["probs/rejected"].get<double>(), 1e-3);
  EXPECT_GT(rows.back()["grad/rejected_log10"].get<double>() - rows.front()["grad/rejected_log10"].get<double>(), 3.0);
  // 3. the unseen mass rises in the late phase, as the chosen probability falls
  EXPECT_GT(rows.back()["probs/unseen"].get<double>(), rows[peak]["probs/unseen"].get<double>() + 0.2);
  // Corollary 1 through autograd: the per-pair ratio |dL/dpi_l|/|dL/dpi_w| = pi_w/pi_l, so its
  // mean log10 equals (mean logp_w - mean logp_l)/ln 10 on every row.
  for (const auto& row : rows) {
    const double expected = (row["logps/chosen"].get<double>() - row["logps/rejected"].get<double>()) / std::log(10.0);
    EXPECT_NEAR(row["grad/ratio_log10"].get<double>(), expected, 1e-4 * std::max(1.0, std::abs(expected)));
  }
}

TEST(TrainingTest, SameSeedGivesSameNumbersAndAnotherSeedDoesNot) {
  const auto a = read_metrics(run_config(kShort, "seed-a"));
  const auto b = read_metrics(run_config(kShort, "seed-b"));
  const auto c = read_metrics(run_config(kShort, "seed-c", {"seed=2"}));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].dump(), b[i].dump()) << i;
  EXPECT_NE(a.back()["loss"].get<double>(), c.back()["loss"].get<double>());
}

TEST(TrainingTest, GradientAccumulationMatchesTheLargerBatch) {
  // SGD: the update is linear in the gradient, so a wrong accumulation scale would show (Adam
  // would hide it, and it amplifies rounding in near-zero gradients: g / (|g| + eps) early on).
  const std::vector<std::string> common = {"stages.dpo.data.shuffle=false", "stages.sft.data.shuffle=false",
                                           "stages.dpo.optimizer.name=sgd", "stages.dpo.optimizer.lr=0.5"};
  auto one = common;
  one.push_back("stages.dpo.batch_size=8");
  auto two = common;
  two.push_back("stages.dpo.batch_size=4");
  two.push_back("stages.dpo.grad_accum=2");
  const auto a = read_metrics(run_config(kShort, "accum-a", one), "dpo");
  const auto b = read_metrics(run_config(kShort, "accum-b", two), "dpo");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(), 1e-5);
    EXPECT_NEAR(a[i]["probs/chosen"].get<double>(), b[i]["probs/chosen"].get<double>(), 1e-5);
  }
}

TEST(TrainingTest, ZeroLearningRateLeavesTheWeightsAsTheyAre) {
  // lr 0 measures the starting model: with AdamW and weight decay nothing moves, so every row of
  // the stage (each step the same batch: all 16 pairs in order) logs the same log-probs, and the
  // stage's checkpoint holds the previous stage's weights.
  const std::vector<std::string> whole_batch = {"stages.dpo.batch_size=16", "stages.dpo.data.shuffle=false",
                                                "stages.dpo.log_every=1"};
  std::vector<std::string> zero = whole_batch;
  zero.insert(zero.end(), {"stages.dpo.optimizer.name=adamw", "stages.dpo.optimizer.lr=0",
                           "stages.dpo.optimizer.weight_decay=0.1"});
  const std::string dir = run_config(kShort, "lr-zero", zero);
  const auto rows = read_metrics(dir, "dpo");
  ASSERT_EQ(rows.size(), 40u);
  for (const auto& row : rows) {
    EXPECT_EQ(row["logps/chosen"].get<double>(), rows.front()["logps/chosen"].get<double>());
    EXPECT_EQ(row["logps/rejected"].get<double>(), rows.front()["logps/rejected"].get<double>());
  }
  EXPECT_EQ(testing::read_file(dir + "/checkpoints/dpo/model.pt"), testing::read_file(dir + "/checkpoints/sft/model.pt"));
  // and a small positive lr does move them (the test above can fail)
  std::vector<std::string> small = whole_batch;
  small.push_back("stages.dpo.optimizer.lr=1.0e-4");
  const auto moved = read_metrics(run_config(kShort, "lr-small", small), "dpo");
  EXPECT_NE(moved.back()["logps/rejected"].get<double>(), moved.front()["logps/rejected"].get<double>());
}

TEST(TrainingTest, EpochsDeriveTheStepCount) {
  // 16 pairs, batch 4, accumulation 2 -> 2 steps an epoch; 3 epochs -> 6 steps.
  const auto rows = read_metrics(run_config(kShort, "epochs", {"stages.dpo.steps=0", "stages.dpo.epochs=3",
                                                              "stages.dpo.batch_size=4", "stages.dpo.grad_accum=2",
                                                              "stages.dpo.log_every=1"}), "dpo");
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows.back()["step"], 6);
}

TEST(TrainingTest, RunJsonReportsEachStagesSteadyStateStepTime) {
  const std::string dir = run_config(kShort, "step-time");
  const auto status = nlohmann::json::parse(testing::read_file(dir + "/run.json"));
  ASSERT_EQ(status["stages"].size(), 2u);
  for (const auto& stage : status["stages"]) {
    const auto& t = stage["step_time"];
    EXPECT_EQ(t["steps"], stage["steps"].get<int64_t>() - 1) << stage.dump();  // every step but the first
    EXPECT_GT(t["seconds"].get<double>(), 0.0);
    EXPECT_LT(t["seconds"].get<double>(), stage["seconds"].get<double>());
    EXPECT_NEAR(t["steps_per_second"].get<double>(), t["steps"].get<double>() / t["seconds"].get<double>(), 1e-9);
  }
}

TEST(TrainingTest, ThrowingPluginStopsWithStepAndKeepsMetricsAndCheckpoint) {
  const std::string yaml = std::string("plugin_paths: [") + PREFENGINE_TEST_PLUGIN_DIR + "]\n" + kShort;
  ExperimentConfig config = parse_experiment(yaml, "throw.yaml", {"stages.dpo.loss={plugin: throwing, fail_at_call: 23}",
                                                                  "stages.dpo.checkpoint_every=10"});
  const std::string dir = testing::make_temp_dir("throw");
  try {
    ExperimentRunner(config, dir).run();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("stage 'dpo' step 23: loss plugin 'throwing' failed: deliberate failure"), std::string::npos) << m;
    EXPECT_NE(m.find(dir + "/failures/dpo-step-23"), std::string::npos) << m;
  }
  const auto rows = read_metrics(dir, "dpo");
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.back()["step"], 20);  // logged every 5 steps up to the failure
  // The regular checkpoint (step 20) is untouched and still the latest ...
  EXPECT_EQ(nlohmann::json::parse(testing::read_file(dir + "/checkpoints/dpo/state.json"))["step"], 20);
  EXPECT_EQ(testing::read_file(dir + "/checkpoints/latest"), "dpo\n");
  // ... and the failure's own folder holds the state before the failing step.
  const auto failed = nlohmann::json::parse(testing::read_file(dir + "/failures/dpo-step-23/state.json"));
  EXPECT_EQ(failed["step"], 22);
  EXPECT_EQ(failed["global_step"], 40 + 22);
  EXPECT_EQ(failed["resumable"], true);
  EXPECT_NE(failed["failure"].get<std::string>().find("deliberate failure"), std::string::npos);
  EXPECT_TRUE(boost::filesystem::exists(dir + "/failures/dpo-step-23/model.pt"));
  const auto status = nlohmann::json::parse(testing::read_file(dir + "/run.json"));
  EXPECT_EQ(status["status"], "failed");
  EXPECT_NE(status["error"].get<std::string>().find("step 23"), std::string::npos);
}

TEST(TrainingTest, APluginThrowingANonStdExceptionIsAnErrorNotAnAbort) {
  const std::string yaml = std::string("plugin_paths: [") + PREFENGINE_TEST_PLUGIN_DIR + "]\n" + kShort;
  const std::string dir = testing::make_temp_dir("throw-int");
  try {
    ExperimentRunner(parse_experiment(yaml, "int.yaml", {"stages.dpo.loss={plugin: throwing, int_at_call: 4}"}), dir).run();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("stage 'dpo' step 4: loss plugin 'throwing' failed: it threw something that "
                                         "is not a std::exception"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(boost::filesystem::exists(dir + "/failures/dpo-step-4/model.pt"));
}

TEST(TrainingTest, AFailureMidStageLeavesAResumableRun) {
  // The throwing plugin counts its calls per process: resumed from step 20, it never reaches call 23.
  const std::string yaml = std::string("plugin_paths: [") + PREFENGINE_TEST_PLUGIN_DIR + "]\n" + kShort;
  const std::string whole = testing::make_temp_dir("fail-whole");
  ExperimentRunner(parse_experiment(yaml, "ok.yaml", {"stages.dpo.loss={plugin: throwing}",
                                                      "stages.dpo.checkpoint_every=10"}), whole).run();
  const std::string dir = testing::make_temp_dir("fail-resume");
  try {
    ExperimentRunner(parse_experiment(yaml, "throw.yaml", {"stages.dpo.loss={plugin: throwing, fail_at_call: 23}",
                                                           "stages.dpo.checkpoint_every=10"}), dir).run();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("the last good checkpoint is " + dir + "/checkpoints/dpo (step 20)"),
              std::string::npos) << e.what();
  }
  ExperimentRunner resumed(load_experiment(dir + "/config.yaml"), dir);
  resumed.set_resume(true);
  EXPECT_EQ(resumed.run().global_steps, 80);
  const auto a = read_metrics(whole), b = read_metrics(dir);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["global_step"], b[i]["global_step"]);
    EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(), 1e-6) << "row " << i;
  }
}

TEST(TrainingTest, NonFiniteLossIsAnErrorNamingStepAndRecords) {
  const std::string yaml = std::string("plugin_paths: [") + PREFENGINE_TEST_PLUGIN_DIR + "]\n" + kShort;
  ExperimentConfig config = parse_experiment(yaml, "nan.yaml", {"stages.dpo.loss={plugin: throwing, nan_at_call: 7}"});
  const std::string dir = testing::make_temp_dir("nan");
  try {
    ExperimentRunner(config, dir).run();
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("stage 'dpo' step 7: loss plugin 'throwing' returned a non-finite loss (nan)"), std::string::npos) << m;
    EXPECT_NE(m.find("configs/toy/data/pairs.jsonl:"), std::string::npos) << m;
    EXPECT_NE(m.find("the last good checkpoint is " + dir + "/checkpoints/sft (the end of the previous stage)"),
              std::string::npos) << m;
  }
  EXPECT_EQ(nlohmann::json::parse(testing::read_file(dir + "/failures/dpo-step-7/state.json"))["step"], 6);
  EXPECT_EQ(testing::read_file(dir + "/checkpoints/latest"), "sft\n");  // the last regular checkpoint
  EXPECT_EQ(read_metrics(dir, "sft").size(), 5u);  // the earlier stage's metrics are all there
}

TEST(TrainingTest, EachRunsLogFileHasThatRunsLinesOnly) {
  // Two runs in one process (as a sweep or a test runs them): the second's lines stay out of the
  // first's run.log.
  const std::string first = run_config(kShort, "log-first", {"name=first-run"});
  const std::string second = run_config(kShort, "log-second", {"name=second-run"});
  const std::string log1 = testing::read_file(first + "/run.log");
  const std::string log2 = testing::read_file(second + "/run.log");
  EXPECT_NE(log1.find("run directory " + first), std::string::npos) << log1;
  EXPECT_EQ(log1.find(second), std::string::npos) << "the second run wrote into the first's run.log";
  EXPECT_NE(log2.find("run directory " + second), std::string::npos) << log2;
  EXPECT_EQ(log2.find(first), std::string::npos);
}

TEST(TrainingTest, RunDirectoryIsNeverOverwrittenSilently) {
  const std::string dir = testing::make_temp_dir("rundir");
  testing::write_file(dir + "/metrics.jsonl", "{}\n");
  RunDirectoryOptions options;
  options.output = dir;
  EXPECT_THROW(prepare_run_directory("x", options), std::invalid_argument);
  EXPECT_TRUE(boost::filesystem::exists(dir + "/metrics.jsonl"));
  options.overwrite = true;
  EXPECT_THROW(prepare_run_directory("x", options), std::invalid_argument);  // not a prefengine run
  EXPECT_TRUE(boost::filesystem::exists(dir + "/metrics.jsonl"));
  testing::write_file(dir + "/run.json", R"({"name": "x", "status": "completed"})");
  EXPECT_EQ(prepare_run_directory("x", options), dir);
  EXPECT_FALSE(boost::filesystem::exists(dir + "/metrics.jsonl"));
}

TEST(TrainingTest, TokenLogProbsEqualLogSoftmaxGather) {
  at::manual_seed(0);
  const at::Tensor logits = at::randn({3, 5, 7}, at::kFloat) * 4;
  const at::Tensor ids = at::randint(0, 7, {3, 5}, at::kLong);
  const at::Tensor got = gather_token_logps(logits, ids);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_FLOAT_EQ(got[b][0].item<float>(), 0.0f);
    for (int64_t t = 1; t < 5; ++t) {
      double norm = 0;
      for (int64_t v = 0; v < 7; ++v) norm += std::exp(logits[b][t - 1][v].item<double>());
      const double expected = logits[b][t - 1][ids[b][t].item<int64_t>()].item<double>() - std::log(norm);
      EXPECT_NEAR(got[b][t].item<double>(), expected, 1e-5);
    }
  }
}

TEST(TrainingTest, PackedSequencesMaskTheResponseOnly) {
  std::vector<int64_t> p1 = {1, 2}, r1 = {3}, p2 = {4}, r2 = {5, 6, 7};
  const SequenceTensors s = pack_sequences({{&p1, &r1}, {&p2, &r2}});
  EXPECT_EQ(s.input_ids.sizes(), (at::IntArrayRef{2, 4}));
  EXPECT_TRUE(s.response_mask[0].equal(at::tensor({0.f, 0.f, 1.f, 0.f})));
  EXPECT_TRUE(s.response_mask[1].equal(at::tensor({0.f, 1.f, 1.f, 1.f})));
  EXPECT_TRUE(s.attention_mask[0].equal(at::tensor({1, 1, 1, 0}, at::kLong)));
  EXPECT_TRUE(s.lengths.equal(at::tensor({1.f, 3.f})));
}

struct TwoParams : torch::nn::Module {
  TwoParams() {
    a = register_parameter("a", at::tensor({0.5f, -1.0f}));
    b = register_parameter("b", at::tensor({2.0f}));
  }
  at::Tensor a, b;
};

TEST(TrainingTest, FlatAdamMatchesTheAdamFormula) {
  TwoParams module;
  FlatParameters flat(module);
  OptimizerOptions options;
  options.lr = 0.1;
  FlatOptimizer optimizer(flat, options, 10);
  // Hand-rolled Adam in doubles on f(a, b) = sum(a^2) + 3 b.
  double x[3] = {0.5, -1.0, 2.0}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int step = 1; step <= 3; ++step) {
    flat.zero_grad();
    at::Tensor loss = module.a.pow(2).sum() + 3 * module.b.sum();
    loss.backward();
    optimizer.step();
    const double g[3] = {2 * x[0], 2 * x[1], 3.0};
    for (int i = 0; i < 3; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(0.9, step));
      const double vh = v[i] / (1 - std::pow(0.999, step));
      x[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  EXPECT_NEAR(module.a[0].item<double>(), x[0], 1e-5);
  EXPECT_NEAR(module.a[1].item<double>(), x[1], 1e-5);
  EXPECT_NEAR(module.b[0].item<double>(), x[2], 1e-5);
}

TEST(TrainingTest, FlatSgdWithClippingAndAdamWDecay) {
  TwoParams module;
  FlatParameters flat(module);
  OptimizerOptions sgd;
  sgd.name = "sgd";
  sgd.lr = 0.5;
  sgd.grad_clip = 1.0;
  FlatOptimizer optimizer(flat, sgd, 1);
  flat.zero_grad();
  (module.a.pow(2).sum() + 3 * module.b.sum()).backward();
  const double norm = optimizer.step();
  // gradient (1, -2, 3), norm sqrt(14), clipped to norm 1
  EXPECT_NEAR(norm, std::sqrt(14.0), 1e-6);
  const double s = 1.0 / std::sqrt(14.0);
  EXPECT_NEAR(module.a[0].item<double>(), 0.5 - 0.5 * 1 * s, 1e-6);
  EXPECT_NEAR(module.a[1].item<double>(), -1.0 + 0.5 * 2 * s, 1e-6);
  EXPECT_NEAR(module.b[0].item<double>(), 2.0 - 0.5 * 3 * s, 1e-6);

  TwoParams other;
  FlatParameters flat2(other);
  OptimizerOptions adamw;
  adamw.name = "adamw";
  adamw.lr = 0.1;
  adamw.weight_decay = 0.5;
  FlatOptimizer decayed(flat2, adamw, 1);
  flat2.zero_grad();  // zero gradient: only the decoupled decay moves the weights
  decayed.step();
  EXPECT_NEAR(other.b[0].item<double>(), 2.0 * (1 - 0.1 * 0.5), 1e-6);
}

TEST(TrainingTest, FlatOptimizerNoticesParametersThatOverflowInTheStep) {
  // SGD: b - lr * g with g = 1e38 and lr = 10 is -1e39, past float's largest value (3.4e38).
  TwoParams module;
  FlatParameters flat(module);
  OptimizerOptions sgd;
  sgd.name = "sgd";
  sgd.lr = 10;
  FlatOptimizer optimizer(flat, sgd, 2);
  flat.zero_grad();
  module.a.pow(2).sum().backward();
  optimizer.step();
  EXPECT_TRUE(optimizer.parameters_finite());
  flat.zero_grad();
  (1e38 * module.b.sum()).backward();
  ASSERT_TRUE(std::isfinite(module.b.grad()[0].item<double>()));  // the gradient itself is finite
  optimizer.step();
  EXPECT_FALSE(std::isinf(module.a[0].item<double>()));
  EXPECT_TRUE(std::isinf(module.b[0].item<double>()));
  EXPECT_FALSE(optimizer.parameters_finite());

  // AdamW: the decoupled decay multiplies a weight by 1 - lr * decay = -9; 3e38 * -9 overflows.
  TwoParams other;
  FlatParameters flat2(other);
  OptimizerOptions adamw;
  adamw.name = "adamw";
  adamw.lr = 10;
  adamw.weight_decay = 1;
  FlatOptimizer decayed(flat2, adamw, 2);
  flat2.zero_grad();
  decayed.step();  // 0.5, -1, 2 times -9: finite
  EXPECT_TRUE(decayed.parameters_finite());
  {
    at::NoGradGuard no_grad;
    other.b.fill_(3e38);
  }
  decayed.step();
  EXPECT_TRUE(std::isinf(other.b[0].item<double>()));
  EXPECT_FALSE(decayed.parameters_finite());
}

}  // namespace
}  // namespace prefengine
