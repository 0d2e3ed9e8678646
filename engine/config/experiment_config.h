#pragma once
// The experiment file: typed option structs, parsed from YAML with every value's location kept.
//
//   name: toy-dpo
//   seed: 0
//   model: {plugin: toy_mlp, prompts: 4, responses: 10}
//   stages:
//     - {name: sft, kind: sft, data: {path: ...}, optimizer: {name: adam, lr: 1.0e-2}, steps: 1500}
//     - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: ...}, steps: 2000}
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/dist/distributed_options.h"
#include "engine/data/tokenizer.h"
#include "engine/loop/sampling_options.h"
#include "engine/metrics/early_warning.h"
#include "prefengine/plugin_options.h"

namespace prefengine {

struct OptimizerOptions {
  std::string name = "adam";  // adam, adamw or sgd
  double lr = 1e-3;           // learning rate
  double weight_decay = 0;    // L2 (adam, sgd) or decoupled (adamw) decay; 0 = none
  double beta1 = 0.9;         // Adam first-moment decay
  double beta2 = 0.999;       // Adam second-moment decay
  double eps = 1e-8;          // Adam denominator epsilon
  double momentum = 0;        // SGD momentum; 0 = plain SGD
  double grad_clip = 0;       // clip the global gradient norm to this; 0 = no clipping
  int64_t warmup_steps = 0;   // linear learning-rate warm-up steps; 0 = none
  double warmup_ratio = 0;    // or warm-up over ceil(ratio * the stage's optimizer updates) (TRL's
                              // warmup_ratio); 0 = use warmup_steps
  std::string schedule = "constant";  // constant, linear (decay to 0) or cosine, after warm-up

  void validate() const;
};

struct DataOptions {
  std::string path;         // JSONL file, relative to the working directory
  std::string from_stage;   // instead of path: the pairs an earlier `pairs` stage wrote
                            // (RUN_DIR/pairs/<stage>.jsonl; the runner sets `path`)
  bool shuffle = true;      // reshuffle every epoch (seeded)
  int64_t max_records = 0;  // keep the first N records; 0 = all
  // Text datasets only (TRL formats, tokenized with the experiment's tokenizer):
  int64_t max_prompt_length = 0;  // prompt tokens kept (the end of the prompt); 0 = all
  int64_t max_length = 0;         // prompt + response tokens (the response is cut); 0 = no limit
  int64_t max_completion_length = 0;  // tokens kept of each response (its start); 0 = all
  bool skip_bad_rows = false;     // skip and count malformed rows instead of failing
  bool all_assistant_turns = false;  // sft `messages` rows: train every assistant message, not just the last
  // sft stages: a step's rows packed into as few model rows as fit (first-fit decreasing, at most
  // max_length tokens each, or the stage's longest row), each attending only to itself (TRL's
  // `packing`). The same rows and loss as without it, less padding computed.
  bool packing = false;

  void validate() const;
};

// A grader plugin and its options (`grader: {plugin: math, ...}`): judges sampled responses.
struct GraderOptions {
  std::string plugin;     // "" = none
  PluginOptions options;  // the grader's own options (without `plugin`)
};

// Evaluation during any stage (`eval:`; engine/train/evaluation.h), every `every` steps and at the
// stage's end:
//   path     held-out pairs (text or pre-tokenized, read like the stage's data): per-token log-probs
//            of their chosen and rejected responses; in a pairwise stage also eval/pair_accuracy
//            and eval/loss;
//   prompts  text prompts ({"prompt", "reference"?}): `sampling.n` answers each are generated and
//            graded by `grader`: eval/score_mean, eval/accuracy, eval/pass@k, eval/length_mean and
//            the dispersion measure eval/sample_kl_per_token.
struct EvalOptions {
  std::string path;        // held-out pairs JSONL; "" = none (set from from_stage at run time)
  std::string from_stage;  // instead of path: the pairs an earlier `pairs` stage of this run wrote
  std::string prompts;     // text prompts JSONL; "" = no generation
  int64_t every = 0;       // steps between evaluations; 0 = at every metrics row
  GraderOptions grader;    // judges the generated answers (with `prompts`)
  SamplingOptions sampling;           // how the answers are sampled
  std::vector<int64_t> pass_at;       // the k of eval/pass@k (each <= sampling.n)
  double correct_at = std::numeric_limits<double>::quiet_NaN();  // an answer scoring at least this is
                                      // correct (accuracy, pass@k); NaN = 3/4 up the grader's range
  int64_t max_prompts = 0;            // evaluate the first N prompts; 0 = all
  int64_t max_pairs = 0;              // score the first N held-out pairs; 0 = all
  bool sample_kl = true;              // also score the answers with the stage's reference
  bool save_samples = true;           // write RUN_DIR/eval/<stage>-<step>.jsonl
  std::string location;               // "file:line:column: stages[i].eval", for messages

  bool enabled() const { return !path.empty() || !from_stage.empty() || !prompts.empty(); }
};

// The ppo stage: rollouts from `data.path` prompts, scored by a reward source.
struct PpoStageOptions {
  std::string reward_stage;       // reward model = this earlier stage's checkpoint (model plugin + scalar head)
  std::string reward_checkpoint;  // or a checkpoint directory from another run
  GraderOptions reward_grader;    // or a grader plugin: reward = (score - center) / half_range
  double reward_center = std::numeric_limits<double>::quiet_NaN();      // NaN = the middle of the grader's range
  double reward_half_range = std::numeric_limits<double>::quiet_NaN();  // NaN = half the grader's range
  std::string probe_path;         // pairs JSONL naming the seen responses for probs/*; "" = no probe
  int64_t max_new_tokens = 1;     // sampled tokens per response (the toy model needs 1)
  int64_t eos_id = -1;            // stop a response at this token; -1 = only max_new_tokens
  double temperature = 1.0;       // sampling temperature, > 0
  int64_t minibatch_size = 0;     // rows per optimizer step inside an epoch; 0 = the whole rollout batch
};

struct StageOptions {
  std::string name;               // unique within the experiment; names the checkpoint folder
  std::string kind = "sft";       // a registered stage kind (engine/train/stages/stage_kinds.cpp)
  DataOptions data;               // the training records
  OptimizerOptions optimizer;     // a fresh optimizer per stage
  int64_t steps = 0;              // optimizer steps; 0 = derive from epochs
  int64_t epochs = 0;             // passes over the data; 0 = use steps
  int64_t batch_size = 8;         // records per micro-batch, all ranks together (the global batch)
  int64_t per_device_batch_size = 0;  // TRL's per_device_train_batch_size: records per micro-batch
                                  // per rank; the runner sets batch_size = this * WORLD_SIZE; 0 = unused
  int64_t grad_accum = 1;         // micro-batches per optimizer step
  int64_t log_every = 10;         // steps between metrics rows (the first and last step always)
  int64_t checkpoint_every = 0;   // steps between checkpoints; 0 = only at the end of the stage
  // The policy's weights at the stage's start: an earlier stage's name (its checkpoint in this run)
  // or a checkpoint folder (a path with '/', e.g. runs/sft-base/checkpoints/sft); "" = as the
  // previous stage left them. Any kind; applied by the engine (engine/train/init_from.h).
  std::string init_from;
  std::string init_from_key;      // "file:line:column: stages[i].init_from", for messages
  std::string reference_from;     // pairwise, ppo: the frozen reference's weights from this checkpoint
                                  // (same forms as init_from) instead of the policy's at stage start
  std::string reference_from_key; // "file:line:column: stages[i].reference_from"
  std::string reference = "frozen_copy";  // pairwise, ppo: frozen_copy (of the policy at stage start) or none
  std::string loss_plugin;        // the loss plugin's name (sft: "sft" unless the stage names one)
  PluginOptions loss;             // pairwise, ppo: the loss plugin's options (without `plugin`)
  EvalOptions eval;               // evaluation: held-out pairs, generate and grade
  PpoStageOptions ppo;            // ppo: rollouts and reward
  GraderOptions grader;           // pairs: the judge of the samples
  EarlyWarningOptions warn_3d;    // pairwise: the 3D early warning (on_3d, warn_3d.*)
  bool tensorboard = false;       // report_to includes tensorboard (the stage's, else the experiment's)
  // export: true | {dtype: float32|bfloat16|float16, max_shard_size: 2GB}: at the stage's end the
  // model is written as a Hugging Face folder RUN_DIR/hf/<name> (engine/cli/export_command.h).
  bool export_hf = false;
  std::string export_dtype = "float32";
  int64_t export_max_shard_size = 2000000000;
  std::string export_key;         // "file:line:column: stages[i].export", for messages
  nlohmann::json kind_options;    // options of stage kinds without fields here (their read_options)
  std::string location;           // file:line:column of the stage

  void validate() const;
};

// TRL's names (TrainingArguments / DPOConfig) accepted for a stage's own keys where the meaning is
// the same (README "Coming from TRL"): returns `alias` when the user wrote it (so every later
// message names the key as written), else `native`; both given is an error naming both.
std::string trl_key(PluginOptions& o, const std::string& native, const std::string& alias);

// Reads a grader block at `key`: `key: NAME` or `key: {plugin: NAME, ...options}`; none when the
// key is absent.
GraderOptions read_grader_options(PluginOptions& o, const std::string& key);

struct ExperimentConfig {
  std::string name = "experiment";        // names the run directory
  int64_t seed = 0;                       // the same seed gives the same numbers
  int64_t threads = 0;                    // intra-op threads; 0 = all cores
  bool direct_backward = true;            // a model with the DirectBackward capability (the toy MLP)
                                          // runs outside autograd in sft and pairwise stages
  std::vector<std::string> plugin_paths;  // extra plugin directories
  std::string model_plugin;               // the model plugin's name
  PluginOptions model;                    // the model plugin's options (without `plugin`)
  std::vector<StageOptions> stages;       // run in order on one model
  DistributedOptions distributed;         // data parallelism: backend, timeout, bucket size
  bool has_tokenizer = false;             // a `tokenizer:` block was given (text datasets need one)
  TokenizerOptions tokenizer;             // tokenizes text datasets and generation prompts
  std::string chat_template = "auto";     // conversational rows: auto (the tokenizer's own template from its
                                          // tokenizer_config.json, else default), default, chatml, llama3
  std::optional<bool> enable_thinking;    // passed to a Jinja chat template as enable_thinking (Qwen3)
  std::string reference_cache;            // directory caching reference log-probs; empty = off
  bool tensorboard = false;               // report_to: [tensorboard]: events files in RUN_DIR/tensorboard/<stage>/
  std::string source;                     // the file it was read from
  std::string resolved_yaml;              // the config after overrides, as YAML
  std::string sweep_point;                // a sweep child's point, "path=value, ..." (from the
                                          // `sweep_point` map `prefengine run` writes); "" otherwise

  void validate() const;
};

// Reads, overrides and validates an experiment file. Throws std::invalid_argument with
// "file:line:column: key: expected ..., got ..." for any problem.
ExperimentConfig load_experiment(const std::string& path,
                                 const std::vector<std::string>& overrides = {});

// The same from YAML text (tests); `source` names it in messages.
ExperimentConfig parse_experiment(const std::string& yaml_text, const std::string& source,
                                  const std::vector<std::string>& overrides = {});

}  // namespace prefengine
