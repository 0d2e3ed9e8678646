#include "engine/train/evaluation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <stdexcept>

#include <boost/filesystem.hpp>
#include <spdlog/spdlog.h>

#include "engine/data/stage_data.h"
#include "engine/data/token_records.h"
#include "engine/data/tokenizer.h"
#include "engine/dist/data_parallel.h"
#include "engine/io/durable_file.h"
#include "engine/loop/grading.h"
#include "engine/loop/sampling.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/train/init_from.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/grader.h"
#include "prefengine/model.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_loader.h"

namespace prefengine {
namespace {

// "file:line:col: stages[i].eval: " for messages about the eval block.
std::string eval_prefix(const StageOptions& stage) { return stage.eval.location + ": "; }

// An error of a reader that named the stage, re-raised naming the eval block's key instead.
[[noreturn]] void throw_for_key(const StageOptions& stage, const std::string& key, const std::exception& e) {
  std::string message = e.what();
  const std::string stage_part = stage_prefix(stage);
  if (message.rfind(stage_part, 0) == 0) message.erase(0, stage_part.size());
  throw std::invalid_argument(eval_prefix(stage) + key + ": " + message);
}

// The eval block's file read as if it were the stage's data (same truncation), first `max` records.
StageOptions as_stage_data(const StageOptions& stage, const std::string& path, int64_t max) {
  StageOptions as_data = stage;
  as_data.data.path = path;
  as_data.data.from_stage.clear();
  as_data.data.max_records = max;
  as_data.data.skip_bad_rows = false;
  return as_data;
}

std::vector<PairRecord> load_eval_pairs(const ExperimentConfig& config, const StageOptions& stage) {
  try {
    return load_stage_pairs(config, as_stage_data(stage, stage.eval.path, stage.eval.max_pairs));
  } catch (const std::exception& e) {
    throw_for_key(stage, "path", e);
  }
}

StagePrompts load_eval_prompts(const ExperimentConfig& config, const StageOptions& stage) {
  StagePrompts prompts;
  try {
    prompts = load_stage_prompts(config, as_stage_data(stage, stage.eval.prompts, stage.eval.max_prompts),
                                 "eval.prompts (generation)");
  } catch (const std::exception& e) {
    throw_for_key(stage, "prompts", e);
  }
  if (prompts.records.empty()) {
    throw std::invalid_argument(eval_prefix(stage) + "prompts: " + stage.eval.prompts + " has no prompts");
  }
  return prompts;
}

// Everything the evaluator reads, checked: what validate() and create() share.
struct EvalInputs {
  std::vector<PairRecord> pairs;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<PromptRecord> prompts;
  std::unique_ptr<PluginLoader> loader;
  std::shared_ptr<Grader> grader;
};

EvalInputs read_inputs(StageContext& context) {
  const StageOptions& stage = context.stage;
  const EvalOptions& eval = stage.eval;
  EvalInputs in;
  Model& model = *context.model;
  if (eval.path.empty() && !eval.from_stage.empty()) {
    // eval.from_stage before the run has set its path: the pairs file does not exist before that
    // stage has run; its text needs the experiment's tokenizer.
    (void)make_experiment_tokenizer(context.config, eval_prefix(stage) + "from_stage (text pairs)");
  } else if (!eval.path.empty()) {
    in.pairs = load_eval_pairs(context.config, stage);
    if (in.pairs.empty() && !eval.from_stage.empty()) {
      throw std::invalid_argument(eval_prefix(stage) + "from_stage: stage '" + eval.from_stage + "' kept no pairs (" +
                                  eval.path + " is empty)");
    }
    if (in.pairs.empty()) throw std::invalid_argument(eval_prefix(stage) + "path: " + eval.path + " has no pairs");
    check_token_range(in.pairs, model.vocab_size());
    check_prompt_ids(model, in.pairs);
  }
  if (!eval.prompts.empty()) {
    StagePrompts prompts = load_eval_prompts(context.config, stage);
    in.tokenizer = std::move(prompts.tokenizer);
    in.prompts = std::move(prompts.records);
    check_token_range(in.prompts, model.vocab_size());
    in.loader = std::make_unique<PluginLoader>(context.config.plugin_paths);
    in.grader = create_grader(*in.loader, eval.grader);  // its errors name the eval.grader key
  }
  return in;
}

class Evaluator : public StageEvaluator {
 public:
  Evaluator(StageContext& context, EvalInputs inputs)
      : options_(context.stage.eval),
        stage_name_(context.stage.name),
        stage_index_(context.index),
        seed_(static_cast<uint64_t>(context.config.seed)),
        model_(context.model),
        loss_(dynamic_cast<PairwiseLoss*>(context.loss)),
        writer_(context.dp == nullptr || context.dp->is_writer()),
        in_(std::move(inputs)) {
    if (!context.run_directory.empty()) samples_dir_ = context.run_directory + "/eval";
    if (loss_ != nullptr) requirements_ = loss_->requirements();
    // A reward model's held-out score is its scalar head; every other stage's is the log-probs.
    pair_logps_ = loss_ == nullptr || requirements_.policy_logps;
    const bool pair_reference = !in_.pairs.empty() && loss_ != nullptr && requirements_.reference_logps;
    const bool sample_reference = !in_.prompts.empty() && options_.sample_kl;
    if (pair_reference || sample_reference) {
      // Building the reference draws initial weights from the default generator: put its state
      // back, so a run draws the same training numbers with or without an eval block.
      at::Generator global = at::detail::getDefaultCPUGenerator();
      const at::Tensor state = global.get_state();
      reference_ = make_frozen_reference(context);
      global.set_state(state);
    }
    if (!in_.pairs.empty()) {
      std::vector<TokenSequence> rows;
      for (const auto& r : in_.pairs) rows.push_back({&r.prompt, &r.chosen});
      for (const auto& r : in_.pairs) rows.push_back({&r.prompt, &r.rejected});
      packed_ = pack_sequences(rows);
      if (pair_reference) ref_logps_ = score_in_chunks(*reference_, packed_, true, false).logps;
    }
    if (!sample_reference) reference_.reset();  // only the held-out reference log-probs were needed
    if (in_.grader) {
      correct_at_ = correct_threshold(options_.correct_at, in_.grader->min_score(), in_.grader->max_score());
    }
  }

  bool due(int64_t step, int64_t steps, bool log_row) const override {
    if (options_.every == 0) return log_row;
    return step == 1 || step % options_.every == 0 || step == steps;
  }

  void measure(int64_t step, MetricsRow& row) override {
    Model& model = *model_;
    const bool was_training = model.is_training();
    model.eval();
    const auto start = std::chrono::steady_clock::now();
    if (!in_.pairs.empty()) measure_pairs(model, row);
    if (!in_.prompts.empty()) measure_generation(model, step, row);
    if (was_training) model.train();
    spdlog::info("stage '{}' step {}: evaluated in {:.2f} s", stage_name_, step,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

 private:
  void measure_pairs(Model& model, MetricsRow& row) const {
    const int64_t n = static_cast<int64_t>(in_.pairs.size());
    const bool want_scalar = loss_ != nullptr && requirements_.scalar_head;
    SequenceScores s = score_in_chunks(model, packed_, pair_logps_, want_scalar);
    const at::Tensor lengths = packed_.lengths.to(at::kDouble).clamp_min(1);
    if (pair_logps_) {
      const at::Tensor per_token = s.logps.to(at::kDouble) / lengths;
      row.set("eval/logps_chosen_per_token", per_token.slice(0, 0, n).mean().item<double>());
      row.set("eval/logps_rejected_per_token", per_token.slice(0, n).mean().item<double>());
    }
    if (loss_ == nullptr) return;
    PairwiseBatch batch;
    batch.chosen_lengths = packed_.lengths.slice(0, 0, n);
    batch.rejected_lengths = packed_.lengths.slice(0, n);
    at::Tensor margin;
    if (requirements_.policy_logps) {
      batch.chosen_logps = s.logps.slice(0, 0, n);
      batch.rejected_logps = s.logps.slice(0, n);
      if (requirements_.token_logps) {
        at::NoGradGuard no_grad;
        const SequenceScores t = score_sequences(model, packed_, true, false, /*want_token_logps=*/true);
        batch.chosen_token_logps = t.token_logps.slice(0, 0, n);
        batch.rejected_token_logps = t.token_logps.slice(0, n);
        batch.chosen_mask = packed_.response_mask.slice(0, 0, n);
        batch.rejected_mask = packed_.response_mask.slice(0, n);
      }
      margin = batch.chosen_logps - batch.rejected_logps;
    }
    if (requirements_.reference_logps) {
      batch.ref_chosen_logps = ref_logps_.slice(0, 0, n);
      batch.ref_rejected_logps = ref_logps_.slice(0, n);
      margin = margin - (batch.ref_chosen_logps - batch.ref_rejected_logps);
    }
    if (want_scalar) {
      batch.chosen_rewards = s.scalar.slice(0, 0, n);
      batch.rejected_rewards = s.scalar.slice(0, n);
      if (!requirements_.policy_logps) margin = batch.chosen_rewards - batch.rejected_rewards;
    }
    if (!margin.defined()) throw std::runtime_error("eval: the loss asks for neither log-probs nor rewards");
    at::NoGradGuard no_grad;
    LossOutput out = loss_->pairwise(batch);
    row.set("eval/pair_accuracy", (margin > 0).to(at::kDouble).mean().item<double>());
    if (out.loss.defined()) row.set("eval/loss", out.loss.item<double>());
  }

  void measure_generation(Model& model, int64_t step, MetricsRow& row) {
    const SamplingOptions& sampling = options_.sampling;
    // Its own stream: the same answers at this step on every rank and after a resume.
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(
        seed_ * 1000003ULL + stage_index_ * 7919ULL + static_cast<uint64_t>(step) + 1);
    const size_t prompts = in_.prompts.size();
    std::vector<std::vector<Sample>> samples(prompts);
    std::vector<std::vector<GradedText>> graded(prompts);
    PairCounts counts;
    // Generation and grading overlap: the answers of one batch are graded on another thread
    // while the next batch is generated (one grading thread: graders need not be re-entrant).
    std::future<void> grading;
    const size_t per_batch = static_cast<size_t>(std::max<int64_t>(sampling.batch_size, 1));
    for (size_t first = 0; first < prompts; first += per_batch) {
      const size_t last = std::min(prompts, first + per_batch);
      std::vector<const PromptRecord*> batch;
      for (size_t p = first; p < last; ++p) batch.push_back(&in_.prompts[p]);
      auto drawn = sample_responses_text(model, *in_.tokenizer, batch, sampling, generator);
      for (size_t p = first; p < last; ++p) samples[p] = std::move(drawn[p - first]);
      if (grading.valid()) grading.get();
      grading = std::async(std::launch::async, [this, first, last, &samples, &graded, &counts] {
        for (size_t p = first; p < last; ++p) graded[p] = grade_texts(*in_.grader, in_.prompts[p], samples[p], counts);
      });
    }
    if (grading.valid()) grading.get();

    const int64_t n = sampling.n;
    double score_sum = 0, correct = 0, length_sum = 0, stopped = 0;
    std::vector<double> pass_sums(options_.pass_at.size(), 0.0);
    for (size_t p = 0; p < prompts; ++p) {
      int64_t c = 0;
      for (size_t s = 0; s < samples[p].size(); ++s) {
        const Sample& sample = samples[p][s];
        score_sum += graded[p][s].score;
        if (graded[p][s].score >= correct_at_) ++c;
        length_sum += static_cast<double>(sample.tokens.size()) - (sample.stopped ? 1.0 : 0.0);
        stopped += sample.stopped ? 1.0 : 0.0;
      }
      correct += static_cast<double>(c);
      for (size_t k = 0; k < options_.pass_at.size(); ++k) pass_sums[k] += pass_at_k(n, c, options_.pass_at[k]);
    }
    const double answers = static_cast<double>(prompts) * static_cast<double>(n);
    row.set("eval/score_mean", score_sum / answers);
    row.set("eval/accuracy", correct / answers);
    for (size_t k = 0; k < options_.pass_at.size(); ++k) {
      row.set("eval/pass@" + std::to_string(options_.pass_at[k]), pass_sums[k] / static_cast<double>(prompts));
    }
    row.set("eval/length_mean", length_sum / answers);
    row.set("eval/stopped", stopped / answers);
    if (counts.grade_errors > 0) row.set("eval/grade_errors", static_cast<double>(counts.grade_errors));
    std::vector<double> policy_per_token, reference_per_token;
    if (reference_) sample_log_probs(model, samples, policy_per_token, reference_per_token, row);
    if (writer_ && options_.save_samples && !samples_dir_.empty()) {
      write_samples(step, samples, graded, policy_per_token, reference_per_token);
    }
  }

  // Per-token log-probs of every answer under the policy and the reference, and their means.
  void sample_log_probs(Model& model, const std::vector<std::vector<Sample>>& samples,
                        std::vector<double>& policy, std::vector<double>& reference, MetricsRow& row) const {
    std::vector<TokenSequence> rows;
    for (size_t p = 0; p < samples.size(); ++p) {
      for (const Sample& s : samples[p]) rows.push_back({&in_.prompts[p].prompt, &s.tokens});
    }
    const SequenceTensors packed = pack_sequences(rows);
    const at::Tensor lengths = packed.lengths.to(at::kDouble).clamp_min(1);
    const at::Tensor lp = (score_in_chunks(model, packed, true, false).logps.to(at::kDouble) / lengths).contiguous();
    const at::Tensor rp = (score_in_chunks(*reference_, packed, true, false).logps.to(at::kDouble) / lengths).contiguous();
    policy.assign(lp.data_ptr<double>(), lp.data_ptr<double>() + lp.numel());
    reference.assign(rp.data_ptr<double>(), rp.data_ptr<double>() + rp.numel());
    row.set("eval/sample_logps_per_token", lp.mean().item<double>());
    row.set("eval/sample_ref_logps_per_token", rp.mean().item<double>());
    row.set("eval/sample_kl_per_token", (lp - rp).mean().item<double>());
  }

  void write_samples(int64_t step, const std::vector<std::vector<Sample>>& samples,
                     const std::vector<std::vector<GradedText>>& graded, const std::vector<double>& policy,
                     const std::vector<double>& reference) const {
    std::string out;
    size_t flat = 0;
    for (size_t p = 0; p < samples.size(); ++p) {
      const PromptRecord& prompt = in_.prompts[p];
      for (size_t s = 0; s < samples[p].size(); ++s, ++flat) {
        nlohmann::json line = {{"prompt", prompt.prompt_text}, {"response", samples[p][s].text},
                               {"score", graded[p][s].score},   {"correct", graded[p][s].score >= correct_at_},
                               {"sample", s},                   {"tokens", samples[p][s].tokens.size()},
                               {"stopped", samples[p][s].stopped}, {"source", prompt.source},
                               {"step", step}};
        if (prompt.reference) line["reference"] = *prompt.reference;
        if (graded[p][s].error) line["grade_error"] = true;
        if (flat < policy.size()) {
          line["logps_per_token"] = policy[flat];
          line["ref_logps_per_token"] = reference[flat];
        }
        out += line.dump() + "\n";
      }
    }
    boost::filesystem::create_directories(samples_dir_);
    write_file_durably(samples_dir_ + "/" + stage_name_ + "-" + std::to_string(step) + ".jsonl", out);
  }

  EvalOptions options_;
  std::string stage_name_;
  uint64_t stage_index_;
  uint64_t seed_;
  std::shared_ptr<Model> model_;
  PairwiseLoss* loss_;
  LossRequirements requirements_;
  bool writer_;
  bool pair_logps_ = true;
  EvalInputs in_;
  std::string samples_dir_;
  std::shared_ptr<Model> reference_;
  SequenceTensors packed_;
  at::Tensor ref_logps_;
  double correct_at_ = 0;
};

}  // namespace

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) {
    throw std::invalid_argument("pass@k: expected 0 <= c <= n and 1 <= k <= n, got n=" + std::to_string(n) +
                                ", c=" + std::to_string(c) + ", k=" + std::to_string(k));
  }
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i): no factorials, no overflow.
  double ratio = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) ratio *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - ratio;
}

double correct_threshold(double configured, double min_score, double max_score) {
  if (!std::isnan(configured)) return configured;
  return min_score + 0.75 * (max_score - min_score);
}

StageEvaluator::~StageEvaluator() = default;

void StageEvaluator::validate(StageContext& context) {
  if (!context.stage.eval.enabled()) return;
  (void)read_inputs(context);
}

std::unique_ptr<StageEvaluator> StageEvaluator::create(StageContext& context) {
  if (!context.stage.eval.enabled()) return nullptr;
  return std::make_unique<Evaluator>(context, read_inputs(context));
}

}  // namespace prefengine
