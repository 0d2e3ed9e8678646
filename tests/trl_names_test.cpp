// TRL's config names as aliases of prefengine's keys, and the metrics under TRL's names
// (learning_rate, epoch, logits/chosen, logits/rejected, eval_*).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/config/experiment_config.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/train/checkpoint.h"
#include "prefengine/model.h"
#include "prefengine/plugin_loader.h"
#include "test_util.h"

namespace prefengine {
namespace {

const char* kHeader =
    "name: trl\nseed: 0\nthreads: 1\n"
    "model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 16, layers: 2}\n"
    "stages:\n";

// The fields the aliases set, as text.
std::string describe(const StageOptions& s) {
  std::ostringstream out;
  out << "lr " << s.optimizer.lr << " grad_clip " << s.optimizer.grad_clip << " warmup_steps "
      << s.optimizer.warmup_steps << " warmup_ratio " << s.optimizer.warmup_ratio << " steps " << s.steps
      << " epochs " << s.epochs << " log_every " << s.log_every << " checkpoint_every " << s.checkpoint_every
      << " grad_accum " << s.grad_accum << " batch_size " << s.batch_size << " max_new_tokens "
      << s.ppo.max_new_tokens;
  return out.str();
}

StageOptions parse_stage(const std::string& stage_keys, const std::string& kind = "sft") {
  std::string stage = "  - {name: s, kind: " + kind + ", data: {path: configs/toy/data/sft_scenario1.jsonl}, ";
  if (kind == "ppo") stage += "loss: {plugin: ppo}, reward: {grader: math}, ";
  const std::string keys = " " + stage_keys;
  if (keys.find(" steps:") == std::string::npos && keys.find("max_steps:") == std::string::npos) stage += "steps: 5, ";
  return parse_experiment(kHeader + stage + stage_keys + "}\n", "exp.yaml").stages.at(0);
}

std::string error_of(const std::string& stage_keys, const std::string& kind = "sft") {
  try {
    parse_stage(stage_keys, kind);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

struct Alias {
  std::string trl;     // TRL's name
  std::string native;  // prefengine's key (optimizer.X sits in the optimizer block)
  std::string value;
  std::string kind;

  std::string trl_yaml() const { return trl + ": " + value; }
  std::string native_yaml() const {
    if (native.rfind("optimizer.", 0) == 0) return "optimizer: {" + native.substr(10) + ": " + value + "}";
    return native + ": " + value;
  }
};

const std::vector<Alias> kAliases = {
    {"learning_rate", "optimizer.lr", "0.003", "sft"},
    {"max_steps", "steps", "40", "sft"},
    {"logging_steps", "log_every", "7", "sft"},
    {"save_steps", "checkpoint_every", "9", "sft"},
    {"max_grad_norm", "optimizer.grad_clip", "0.5", "sft"},
    {"warmup_ratio", "optimizer.warmup_ratio", "0.1", "sft"},
    {"gradient_accumulation_steps", "grad_accum", "3", "sft"},
    {"per_device_train_batch_size", "batch_size", "6", "sft"},
    {"max_completion_length", "max_new_tokens", "12", "ppo"},
};

TEST(TrlNamesConfigTest, EachAliasReadsAsItsNativeKey) {
  const std::string defaults = describe(parse_stage(""));
  for (const Alias& a : kAliases) {
    SCOPED_TRACE(a.trl);
    const StageOptions trl = parse_stage(a.trl_yaml(), a.kind);
    const StageOptions native = parse_stage(a.native_yaml(), a.kind);
    EXPECT_EQ(describe(trl), describe(native));
    EXPECT_NE(describe(trl), a.kind == "sft" ? defaults : describe(parse_stage("", a.kind)));  // the value was taken
  }
  // per_device_train_batch_size is per rank: the runner multiplies it by WORLD_SIZE (tested on two
  // ranks below); batch_size is the global batch.
  EXPECT_EQ(parse_stage("per_device_train_batch_size: 6").per_device_batch_size, 6);
  EXPECT_EQ(parse_stage("batch_size: 6").per_device_batch_size, 0);
}

TEST(TrlNamesConfigTest, TheAliasAndTheNativeKeyTogetherAreAnErrorNamingBoth) {
  for (const Alias& a : kAliases) {
    SCOPED_TRACE(a.trl);
    const std::string error = error_of(a.trl_yaml() + ", " + a.native_yaml(), a.kind);
    EXPECT_NE(error.find("exp.yaml:"), std::string::npos) << error;
    EXPECT_NE(error.find("stages[0]." + a.trl + ": expected either " + a.trl + " (TRL's name) or " + a.native +
                         " (the same setting), not both"),
              std::string::npos) << error;
  }
  // warmup_ratio and warmup_steps are two ways of one setting too.
  const std::string error = error_of("warmup_ratio: 0.1, optimizer: {warmup_steps: 3}");
  EXPECT_NE(error.find("stages[0].warmup_ratio: expected either warmup_ratio or optimizer.warmup_steps, not both"),
            std::string::npos) << error;
}

TEST(TrlNamesConfigTest, MessagesNameTheKeyAsWritten) {
  std::string e = error_of("learning_rate: -1");
  EXPECT_NE(e.find("stages[0].learning_rate: expected"), std::string::npos) << e;
  e = error_of("logging_steps: 0");
  EXPECT_NE(e.find("stages[0].logging_steps: expected"), std::string::npos) << e;
  e = error_of("max_steps: 0");
  EXPECT_NE(e.find("stages[0].max_steps: expected max_steps > 0 or epochs > 0"), std::string::npos) << e;
  e = error_of("max_steps: 3, epochs: 2");
  EXPECT_NE(e.find("either max_steps or epochs, not both"), std::string::npos) << e;
  e = error_of("warmup_ratio: 1.5");
  EXPECT_NE(e.find("stages[0].warmup_ratio: expected"), std::string::npos) << e;
  e = error_of("per_device_train_batch_size: 0");
  EXPECT_NE(e.find("stages[0].per_device_train_batch_size: expected"), std::string::npos) << e;
  e = error_of("max_completion_length: 0", "ppo");
  EXPECT_NE(e.find("stages[0].max_completion_length: expected"), std::string::npos) << e;
}

// On offline data (sft, pairwise) TRL's max_completion_length is data.max_completion_length; a
// pairs stage generates, so there it is an error naming what to use.
TEST(TrlNamesConfigTest, MaxCompletionLengthCutsOfflineResponses) {
  auto stage_of = [](const std::string& data_extra, const std::string& stage_extra, const std::string& kind) {
    const std::string loss = kind == "pairwise" ? ", loss: {plugin: dpo}" : "";
    return parse_experiment(std::string(kHeader) + "  - {name: s, kind: " + kind + loss +
                                ", data: {path: configs/toy/data/pairs.jsonl" + data_extra + "}, steps: 5" +
                                stage_extra + "}\n",
                            "exp.yaml")
        .stages.at(0);
  };
  for (const char* kind : {"sft", "pairwise"}) {
    SCOPED_TRACE(kind);
    EXPECT_EQ(stage_of("", ", max_completion_length: 12", kind).data.max_completion_length, 12);
    EXPECT_EQ(stage_of(", max_completion_length: 12", "", kind).data.max_completion_length, 12);
    EXPECT_EQ(stage_of("", "", kind).data.max_completion_length, 0);
    try {
      stage_of(", max_completion_length: 12", ", max_completion_length: 12", kind);
      ADD_FAILURE() << "both names were accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("either max_completion_length (TRL's name) or data.max_completion_length"),
                std::string::npos)
          << e.what();
    }
  }
  const std::string e = error_of("max_completion_length: 12", "pairs");
  EXPECT_NE(e.find("stages[0].max_completion_length: expected an sft, pairwise or ppo stage"), std::string::npos) << e;
  EXPECT_NE(e.find("sampling.max_new_tokens"), std::string::npos) << e;
}

// A toy run under prefengine's keys and the same under TRL's.
std::string toy_run_yaml(bool trl) {
  const std::string sft = trl ? "learning_rate: 1.0e-2, warmup_ratio: 0.25, max_grad_norm: 0.5, max_steps: 8, "
                                "logging_steps: 1, save_steps: 4, per_device_train_batch_size: 2, "
                                "gradient_accumulation_steps: 2, optimizer: {schedule: linear}"
                              : "optimizer: {lr: 1.0e-2, warmup_ratio: 0.25, grad_clip: 0.5, schedule: linear}, "
                                "steps: 8, log_every: 1, checkpoint_every: 4, batch_size: 2, grad_accum: 2";
  const std::string dpo = trl ? "learning_rate: 1.0e-3, max_steps: 10, logging_steps: 2, per_device_train_batch_size: 8"
                              : "optimizer: {lr: 1.0e-3}, steps: 10, log_every: 2, batch_size: 8";
  return std::string(kHeader) + "  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, " +
         sft + "}\n  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: "
               "configs/toy/data/pairs.jsonl},\n     eval: {path: configs/toy/data/pairs.jsonl, every: 4}, " +
         dpo + "}\n";
}

int64_t count_lines(const std::string& path) {
  std::istringstream in(testing::read_file(path));
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) n += !line.empty();
  return n;
}

TEST(TrlNamesRunTest, TheSameRunUnderTrlNamesAndTheLoggedTrlMetrics) {
  const std::string dir = testing::make_temp_dir("trl-run");
  const std::string native = testing::write_file(dir + "/native.yaml", toy_run_yaml(false));
  const std::string trl = testing::write_file(dir + "/trl.yaml", toy_run_yaml(true));
  auto r = testing::run_cli("run " + native + " --output " + dir + "/native");
  ASSERT_EQ(r.code, 0) << r.output;
  r = testing::run_cli("run " + trl + " --output " + dir + "/trl");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(testing::read_file(dir + "/trl/metrics.jsonl"), testing::read_file(dir + "/native/metrics.jsonl"));

  // learning_rate: the schedule in closed form. warmup over ceil(0.25 * 8) = 2 updates, then linear
  // decay to 0 at update 8; a row logs the rate of the next update (as `lr`, and as TRL logs it).
  const auto sft = testing::read_metrics(dir + "/trl", "sft");
  ASSERT_EQ(sft.size(), 8u);
  const int64_t sft_records = count_lines(testing::source_path("configs/toy/data/sft_scenario1.jsonl"));
  for (const auto& row : sft) {
    const int64_t s = row["step"].get<int64_t>();
    const double k = static_cast<double>(s + 1);
    const double expected = k <= 2 ? 1e-2 * k / 2 : 1e-2 * std::max(0.0, 1 - (k - 2) / (8 - 2));
    EXPECT_NEAR(row["learning_rate"].get<double>(), expected, 1e-15) << row.dump();
    EXPECT_EQ(row["learning_rate"], row["lr"]);
    // epoch: records drawn (2 per micro-batch x 2 micro-batches a step) over the data set's size.
    EXPECT_DOUBLE_EQ(row["epoch"].get<double>(), static_cast<double>(s * 2 * 2) / static_cast<double>(sft_records));
  }
  const auto dpo = testing::read_metrics(dir + "/trl", "dpo");
  const int64_t pairs = count_lines(testing::source_path("configs/toy/data/pairs.jsonl"));
  int eval_rows = 0;
  for (const auto& row : dpo) {
    const int64_t s = row["step"].get<int64_t>();
    EXPECT_DOUBLE_EQ(row["epoch"].get<double>(), static_cast<double>(s * 8) / static_cast<double>(pairs));
    EXPECT_EQ(row["learning_rate"].get<double>(), 1e-3);
    EXPECT_TRUE(row.contains("logits/chosen")) << row.dump();
    EXPECT_TRUE(row.contains("logits/rejected")) << row.dump();
    // eval_X beside eval/X, equal; nothing else under eval_.
    int evals = 0;
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (it.key().rfind("eval/", 0) == 0) {
        ++evals;
        const std::string trl_name = "eval_" + it.key().substr(5);
        ASSERT_TRUE(row.contains(trl_name)) << row.dump();
        EXPECT_EQ(row[trl_name], it.value());
      }
    }
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (it.key().rfind("eval_", 0) == 0) {
        EXPECT_TRUE(row.contains("eval/" + it.key().substr(5))) << it.key();
      }
    }
    if (evals > 0) {
      ++eval_rows;
      EXPECT_TRUE(row.contains("eval_loss")) << row.dump();
    }
  }
  EXPECT_EQ(eval_rows, 4);  // steps 1, 4, 8 and the last
}

// logits/chosen and logits/rejected recomputed here: the policy's logits at the positions that score
// each response token, averaged over the vocabulary and over the batch's response tokens.
TEST(TrlNamesRunTest, LogitsChosenAndRejectedAreTheMeanLogitsOverResponseTokens) {
  const std::string dir = testing::make_temp_dir("trl-logits");
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> token(3, 258), length(1, 4);
  std::string pairs;
  struct Pair {
    std::vector<int64_t> prompt, chosen, rejected;
  };
  std::vector<Pair> data;
  auto ids = [&](int n) {
    std::vector<int64_t> v;
    for (int i = 0; i < n; ++i) v.push_back(token(rng));
    return v;
  };
  auto json_ids = [](const std::vector<int64_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  };
  for (int i = 0; i < 6; ++i) {
    Pair p{ids(length(rng) + 1), ids(length(rng)), ids(length(rng))};
    pairs += "{\"prompt_ids\": " + json_ids(p.prompt) + ", \"chosen_ids\": " + json_ids(p.chosen) +
             ", \"rejected_ids\": " + json_ids(p.rejected) + "}\n";
    data.push_back(p);
  }
  testing::write_file(dir + "/pairs.jsonl", pairs);
  // Stage warm moves the weights away from their initialisation; stage measure logs its first step,
  // computed on warm's final weights over all six pairs in one micro-batch.
  const std::string yaml = testing::tiny_lm_yaml() + "stages:\n"
      "  - {name: warm, kind: pairwise, loss: {plugin: dpo}, data: {path: " + dir + "/pairs.jsonl}, batch_size: 2,\n"
      "     steps: 3, optimizer: {lr: 1.0e-2}}\n"
      "  - {name: measure, kind: pairwise, loss: {plugin: dpo}, data: {path: " + dir + "/pairs.jsonl, shuffle: false},\n"
      "     batch_size: 6, steps: 1}\n";
  const std::string exp = testing::write_file(dir + "/exp.yaml", yaml);
  const auto r = testing::run_cli("run " + exp + " --output " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto rows = testing::read_metrics(dir + "/run", "measure");
  ASSERT_EQ(rows.size(), 1u);

  const ExperimentConfig config = parse_experiment(yaml, exp);
  PluginLoader loader({PREFENGINE_PLUGIN_DIR});
  const std::shared_ptr<Model> model = create_model(loader, config);
  load_model_weights(dir + "/run/checkpoints/warm", *model);
  at::NoGradGuard no_grad;
  double sum[2] = {0, 0};
  int64_t tokens[2] = {0, 0};
  for (const Pair& p : data) {
    for (int side = 0; side < 2; ++side) {
      const std::vector<int64_t>& response = side == 0 ? p.chosen : p.rejected;
      std::vector<int64_t> sequence = p.prompt;
      sequence.insert(sequence.end(), response.begin(), response.end());
      ModelInput input;
      input.input_ids = at::tensor(sequence, at::kLong).unsqueeze(0);
      const at::Tensor logits = model->forward(input).logits.to(at::kDouble);  // [1, T, V]
      for (size_t t = p.prompt.size(); t < sequence.size(); ++t) {
        sum[side] += logits[0][static_cast<int64_t>(t) - 1].mean().item<double>();  // position t-1 scores token t
        ++tokens[side];
      }
    }
  }
  const double chosen = sum[0] / static_cast<double>(tokens[0]);
  const double rejected = sum[1] / static_cast<double>(tokens[1]);
  EXPECT_NEAR(rows[0]["logits/chosen"].get<double>(), chosen, 1e-5 * (1 + std::abs(chosen)));
  EXPECT_NEAR(rows[0]["logits/rejected"].get<double>(), rejected, 1e-5 * (1 + std::abs(rejected)));
  EXPECT_NE(chosen, rejected);
}

// per_device_train_batch_size is per rank: on two ranks it is half the global batch_size.
TEST(TrlNamesRunTest, PerDeviceBatchSizeIsPerRank) {
  const std::string dir = testing::make_temp_dir("trl-ranks");
  const std::string body = "  - {name: dpo, kind: pairwise, loss: {plugin: dpo}, data: {path: configs/toy/data/pairs.jsonl},\n"
                           "     optimizer: {name: sgd, lr: 1.0e-2}, steps: 4, log_every: 1, ";
  const std::string global = testing::write_file(dir + "/global.yaml", kHeader + body + "batch_size: 8}\n");
  const std::string per_rank = testing::write_file(dir + "/per_rank.yaml", kHeader + body + "per_device_train_batch_size: 4}\n");
  auto r = testing::run_cli("run " + global + " --nproc 2 --output " + dir + "/global");
  ASSERT_EQ(r.code, 0) << r.output;
  r = testing::run_cli("run " + per_rank + " --nproc 2 --output " + dir + "/per_rank");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto a = testing::read_metrics(dir + "/global");
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(testing::read_file(dir + "/per_rank/metrics.jsonl"), testing::read_file(dir + "/global/metrics.jsonl"));
  // epoch counts all ranks' records: 8 a step of the 16 pairs.
  EXPECT_DOUBLE_EQ(a[1]["epoch"].get<double>(), 2 * 8.0 / 16.0);
}

}  // namespace
}  // namespace prefengine
