// The pairs stage: on-policy preference pairs. For each prompt of a text prompt file it samples
// `sampling.n` responses from the current policy, grades them with a grader plugin and writes
// chosen = the best, rejected = the worst to RUN_DIR/pairs/<stage>.jsonl (TRL's preference
// format, with the scores and the sampling settings). A later pairwise stage trains on them with
// `data: {from_stage: <this stage>}`. It makes no optimizer update: the policy is unchanged.
//
//   - name: pairs
//     kind: pairs
//     data: {path: prompts.jsonl}          # {"prompt": ..., "reference": ...} rows
//     grader: {plugin: math}
//     sampling: {n: 8, max_new_tokens: 64, temperature: 1.0}
//     chosen_from: policy                  # or `reference`: the prompt's reference answer
//     rejected_from: policy                # or a checkpoint folder of another model
//     batch_size: 8                        # prompts per step
//
// Ties: among samples with the best score the first sampled is chosen, among those with the worst
// the first is rejected; a prompt whose chosen does not score above its rejected is dropped and
// counted (pairs/dropped_ties). An empty response is never a side (a pairwise stage refuses it): a
// prompt without a non-empty sample for a side is dropped and counted (pairs/dropped_empty). With
// data parallelism every rank samples every prompt (the same draws) and rank 0 writes. Each step's
// pairs carry the step; a resumed stage drops the lines of steps after its checkpoint and samples
// them again from the checkpoint's generator state.
#include <algorithm>
#include <fstream>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <boost/filesystem.hpp>
#include <spdlog/spdlog.h>

#include "engine/data/stage_data.h"
#include "engine/data/token_records.h"
#include "engine/dist/data_parallel.h"
#include "engine/io/durable_file.h"
#include "engine/loop/grading.h"
#include "engine/loop/sampling.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/train/checkpoint.h"
#include "engine/train/stage_unit.h"
#include "prefengine/grader.h"
#include "prefengine/model.h"
#include "prefengine/plugin_loader.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

struct PairsOptions {
  SamplingOptions sampling;
  std::string chosen_from = "policy";    // policy | reference
  std::string rejected_from = "policy";  // policy | a checkpoint folder
};

PairsOptions pairs_options(const StageOptions& stage) {
  const auto& j = stage.kind_options;
  PairsOptions p;
  p.sampling.n = j.at("n");
  p.sampling.max_new_tokens = j.at("max_new_tokens");
  p.sampling.temperature = j.at("temperature");
  p.sampling.top_k = j.at("top_k");
  p.sampling.top_p = j.at("top_p");
  p.sampling.batch_size = j.at("batch_size");
  p.chosen_from = j.at("chosen_from");
  p.rejected_from = j.at("rejected_from");
  return p;
}

class PairsStage : public StageUnit {
 public:
  int64_t prepare(StageContext& context) override {
    if (!loaded_) validate(context);
    options_ = pairs_options(context.stage);
    policy_ = context.model.get();
    writer_ = context.dp == nullptr || context.dp->is_writer();
    if (context.dp != nullptr) context.dp->broadcast_module(*policy_);
    if (options_.rejected_from != "policy") {
      other_ = context.make_model();
      load_model_weights(options_.rejected_from, *other_);
      other_->eval();
    }
    stage_name_ = context.stage.name;
    path_ = context.run_directory + "/pairs/" + context.stage.name + ".jsonl";
    if (!context.run_directory.empty()) fs::create_directories(context.run_directory + "/pairs");
    epochs_records_ = static_cast<int64_t>(prompts_.size()) * std::max<int64_t>(context.stage.epochs, 1);
    context.report["data"] = {{"prompts", prompts_.size()}};
    report_ = &context.report;
    return static_cast<int64_t>(prompts_.size());
  }

  void validate(StageContext& context) override {
    const StageOptions& stage = context.stage;
    StagePrompts text = load_stage_prompts(context.config, stage, "a pairs stage samples text");
    prompts_ = std::move(text.records);
    tokenizer_ = std::move(text.tokenizer);
    check_token_range(prompts_, context.model->vocab_size());
    const PairsOptions options = pairs_options(stage);
    if (options.chosen_from == "reference") {
      for (const auto& p : prompts_) {
        if (!p.reference) {
          throw std::invalid_argument(stage_prefix(stage) + p.source +
                                      ": chosen_from: reference needs a \"reference\" in every prompt row");
        }
      }
    }
    if (options.rejected_from != "policy" && !fs::exists(options.rejected_from + "/model.pt")) {
      throw std::invalid_argument(stage_prefix(stage) + "rejected_from: expected `policy` or a checkpoint folder "
                                  "(RUN_DIR/checkpoints/NAME), got '" + options.rejected_from + "' (no model.pt there)");
    }
    if (options.rejected_from != "policy") (void)read_checkpoint_state(options.rejected_from);
    loader_ = std::make_unique<PluginLoader>(context.config.plugin_paths);
    grader_name_ = stage.grader.plugin;
    grader_ = create_grader(*loader_, stage.grader);
    loaded_ = true;
  }

  int64_t updates_per_step() const override { return 0; }

  void begin_step(const std::vector<int64_t>& records, const StepInfo& info) override {
    if (first_step_) {
      first_step_ = false;
      if (writer_) keep_pair_lines_before(info.step);
    }
    // The step's prompts: records past the last epoch's end are not drawn again.
    std::vector<const PromptRecord*> prompts;
    const int64_t first_position = (info.step - 1) * static_cast<int64_t>(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      if (first_position + static_cast<int64_t>(i) < epochs_records_) prompts.push_back(&prompts_[static_cast<size_t>(records[i])]);
    }
    step_ = PairCounts{};
    if (prompts.empty()) return;
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    const auto policy_samples = sample_responses_text(*policy_, *tokenizer_, prompts, options_.sampling, generator);
    std::vector<std::vector<Sample>> other_samples;
    if (other_) other_samples = sample_responses_text(*other_, *tokenizer_, prompts, options_.sampling, generator);
    std::string lines;  // the step's pairs, appended at once
    for (size_t p = 0; p < prompts.size(); ++p) {
      const PromptRecord& prompt = *prompts[p];
      const std::vector<GradedText> policy = grade_texts(*grader_, prompt, policy_samples[p], step_);
      std::vector<GradedText> rejected_pool = policy;
      if (other_) rejected_pool = grade_texts(*grader_, prompt, other_samples[p], step_);
      std::vector<GradedText> chosen_pool;
      if (options_.chosen_from == "reference") {
        Sample reference;
        reference.text = *prompt.reference;
        chosen_pool = grade_texts(*grader_, prompt, {reference}, step_);
      }
      const PairChoice pair = choose_pair(chosen_pool.empty() ? policy : chosen_pool, rejected_pool);
      ++step_.prompts;
      if (pair.drop == PairChoice::Drop::kEmpty) {
        ++step_.dropped_empty;
        continue;
      }
      if (pair.drop == PairChoice::Drop::kTie) {
        ++step_.dropped_ties;
        continue;
      }
      const GradedText& chosen = *pair.chosen;
      const GradedText& rejected = *pair.rejected;
      ++step_.kept;
      step_.score_chosen += chosen.score;
      step_.score_rejected += rejected.score;
      if (writer_) {
        nlohmann::json line = {{"prompt", prompt.prompt_text},     {"chosen", chosen.text},
                               {"rejected", rejected.text},       {"score_chosen", chosen.score},
                               {"score_rejected", rejected.score}, {"scores", scores_of(policy)},
                               {"source", prompt.source},          {"step", info.step},
                               {"sampling", options_.sampling.to_json()}};
        if (prompt.reference) line["reference"] = *prompt.reference;
        if (other_) line["rejected_scores"] = scores_of(rejected_pool);
        lines += line.dump() + "\n";
      }
    }
    // Checked (a full disk is an error naming the file); even a step without pairs creates the
    // file, which a later stage's data.from_stage reads.
    if (writer_) append_file_checked(path_, lines);
  }

  std::vector<UpdatePlan> plan(const std::vector<int64_t>&, const StageOptions&, DataParallel&,
                               std::mt19937_64&) override {
    return {};  // no optimizer update
  }

  LossOutput micro_batch(const std::vector<int64_t>&, const StepInfo&) override {
    throw std::logic_error("a pairs stage has no micro-batches");
  }

  bool forces_row(int64_t) const override { return true; }  // every step's counts are logged

  void end_step(MetricsRow& row, const StepInfo& info) override {
    row.set("pairs/prompts", static_cast<double>(step_.prompts));
    row.set("pairs/kept", static_cast<double>(step_.kept));
    row.set("pairs/dropped_ties", static_cast<double>(step_.dropped_ties));
    if (step_.dropped_empty > 0) row.set("pairs/dropped_empty", static_cast<double>(step_.dropped_empty));
    if (step_.kept > 0) {
      row.set("pairs/score_chosen", step_.score_chosen / static_cast<double>(step_.kept));
      row.set("pairs/score_rejected", step_.score_rejected / static_cast<double>(step_.kept));
    }
    if (step_.samples > 0) row.set("pairs/score_mean", step_.score_sum / static_cast<double>(step_.samples));
    if (step_.grade_errors > 0) row.set("pairs/grade_errors", static_cast<double>(step_.grade_errors));
    if (info.step == info.steps && writer_) {
      // The stage's totals, counted from the file (whole across resumes).
      int64_t kept = 0;
      std::ifstream in(path_);
      for (std::string line; std::getline(in, line);) kept += line.empty() ? 0 : 1;
      (*report_)["pairs"] = {{"file", path_}, {"kept", kept}, {"prompts", epochs_records_},
                             {"dropped", epochs_records_ - kept}};
      spdlog::info("stage '{}': {} pairs kept of {} prompts in {}", stage_name_, kept, epochs_records_, path_);
    }
  }

  std::vector<std::string> progress_keys() const override { return {"pairs/kept", "pairs/score_chosen", "pairs/score_rejected"}; }

  std::string describe(int64_t records) const override {
    return "pairs, grader " + grader_name_ + ": " + std::to_string(records) + " prompts x " +
           std::to_string(options_.sampling.n) + " samples";
  }

 private:
  static nlohmann::json scores_of(const std::vector<GradedText>& graded) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& g : graded) out.push_back(g.score);
    return out;
  }

  // A resumed stage continues after its checkpoint's step: lines of later steps go.
  void keep_pair_lines_before(int64_t step) {
    std::string kept;
    {
      std::ifstream in(path_);
      for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() < step) {
          kept += line + "\n";
        }
      }
    }
    // Replaced whole (write and rename): a crash here leaves the old lines, which the next
    // resume drops again, never a half-written file.
    write_file_durably(path_, kept);
  }

  PairsOptions options_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<PromptRecord> prompts_;
  std::unique_ptr<PluginLoader> loader_;
  std::shared_ptr<Grader> grader_;
  std::string grader_name_;
  Model* policy_ = nullptr;
  std::shared_ptr<Model> other_;
  std::string stage_name_;
  std::string path_;
  nlohmann::json* report_ = nullptr;
  int64_t epochs_records_ = 0;
  bool writer_ = true;
  bool loaded_ = false;
  bool first_step_ = true;
  PairCounts step_;
};

}  // namespace

StageKindSpec pairs_stage_kind() {
  StageKindSpec spec;
  spec.name = "pairs";
  spec.summary = "on-policy preference pairs: sample n responses a prompt, grade them, keep the best and the worst";
  spec.needs_loss = false;
  spec.read_options = [](PluginOptions& o, StageOptions& stage, const std::vector<std::string>& /*earlier*/) {
    const SamplingOptions s = SamplingOptions::read(o, "sampling");
    if (s.n < 2 && o.get_string("chosen_from", "policy") == "policy" && o.get_string("rejected_from", "policy") == "policy") {
      o.fail("sampling.n", "at least 2 (the best and the worst of n samples make a pair)", std::to_string(s.n));
    }
    stage.kind_options = {{"n", s.n},
                          {"max_new_tokens", s.max_new_tokens},
                          {"temperature", s.temperature},
                          {"top_k", s.top_k},
                          {"top_p", s.top_p},
                          {"batch_size", s.batch_size},
                          {"chosen_from", o.get_choice("chosen_from", "policy", {"policy", "reference"})},
                          {"rejected_from", o.get_string("rejected_from", "policy")}};
    if (stage.grader.plugin.empty()) o.fail("grader", "a grader plugin: grader: {plugin: math, ...}", "nothing");
    if (stage.steps == 0 && stage.epochs == 0) stage.epochs = 1;  // every prompt once
  };
  spec.create = [] { return std::make_unique<PairsStage>(); };
  return spec;
}

}  // namespace prefengine
