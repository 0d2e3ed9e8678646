// The engine's fused autograd nodes (token log-probs, soft-target cross-entropy) and the toy
// model's fused MLP: values and gradients against the same math written in plain ATen autograd
// operations (log_softmax, gather, linear, relu), which share no code with the fused nodes, and
// the token log-probs (the engine's one implementation; models and benchmarks use it too) against
// finite differences and closed forms, across chunks.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/module.h>

#include "prefengine/plugin_loader.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// log p(token t+1 | <= t) * mask[t+1] for t < T-1, from plain log_softmax + gather: [N, T-1].
at::Tensor reference_token_logps(const at::Tensor& logits, const at::Tensor& ids, const at::Tensor& mask) {
  const int64_t scored = ids.size(1) - 1;
  return logits.slice(1, 0, scored).to(at::kDouble).log_softmax(-1).gather(-1, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1) *
         mask.slice(1, 1).to(at::kDouble);
}

struct Case {
  int64_t positions;  // logits positions: T - 1 (as score_sequences passes) or T (one unused)
  at::ScalarType dtype;
};

TEST(FusedOpsTest, TokenLogProbsAndTheirGradientMatchLogSoftmaxAutograd) {
  const int64_t n = 3, t = 6, vocab = 7;
  for (const Case c : {Case{t - 1, at::kFloat}, Case{t, at::kFloat}, Case{t - 1, at::kBFloat16}}) {
    at::manual_seed(1);
    const at::Tensor base = (at::randn({n, c.positions, vocab}) * 3).to(c.dtype);
    const at::Tensor ids = at::randint(0, vocab, {n, t}, at::kLong);
    const at::Tensor mask = at::randint(0, 2, {n, t}).to(at::kFloat);
    const at::Tensor w_seq = at::randn({n});
    const at::Tensor w_tok = at::randn({n, t});
    const double tol = c.dtype == at::kFloat ? 1e-5 : 2e-2;

    // reference: double-precision log_softmax + gather through autograd
    at::Tensor ref_logits = base.to(at::kDouble).detach().requires_grad_(true);
    const at::Tensor ref_tokens = reference_token_logps(ref_logits, ids, mask);
    const at::Tensor ref_sum = ref_tokens.sum(1);
    const at::Tensor ref_grad_seq = torch::autograd::grad({(ref_sum * w_seq.to(at::kDouble)).sum()}, {ref_logits}, {}, true)[0];
    const at::Tensor ref_grad_tok =
        torch::autograd::grad({(ref_tokens * w_tok.slice(1, 1).to(at::kDouble)).sum()}, {ref_logits})[0];

    at::Tensor logits = base.detach().requires_grad_(true);
    const at::Tensor seq = sequence_logps(logits, ids, mask);
    ASSERT_EQ(seq.sizes(), (std::vector<int64_t>{n}));
    EXPECT_EQ(seq.scalar_type(), at::kFloat);
    EXPECT_LT(max_abs_diff(seq, ref_sum), tol);
    const at::Tensor grad_seq = torch::autograd::grad({(seq * w_seq).sum()}, {logits})[0];
    EXPECT_EQ(grad_seq.scalar_type(), c.dtype);
    EXPECT_LT(max_abs_diff(grad_seq, ref_grad_seq), tol) << "positions " << c.positions;

    const at::Tensor tok = gather_token_logps(logits, ids, mask);
    ASSERT_EQ(tok.sizes(), (std::vector<int64_t>{n, t}));
    EXPECT_EQ(tok.select(1, 0).abs().max().item<float>(), 0.0f);
    EXPECT_LT(max_abs_diff(tok.slice(1, 1), ref_tokens), tol);
    const at::Tensor grad_tok = torch::autograd::grad({(tok * w_tok).sum()}, {logits})[0];
    EXPECT_LT(max_abs_diff(grad_tok, ref_grad_tok), tol) << "positions " << c.positions;
    if (c.positions == t) {  // the last position scores nothing: no gradient there
      EXPECT_EQ(grad_tok.select(1, t - 1).abs().max().item<float>(), 0.0f);
    }
  }
}

TEST(FusedOpsTest, TokenLogProbGradientMatchesFiniteDifferences) {
  at::manual_seed(2);
  const at::Tensor ids = at::randint(0, 5, {2, 4}, at::kLong);
  const at::Tensor mask = at::ones({2, 4});
  at::Tensor logits = at::randn({2, 3, 5}).requires_grad_(true);
  const at::Tensor grad = torch::autograd::grad({sequence_logps(logits, ids, mask).sum()}, {logits})[0];
  const double h = 1e-3;
  at::NoGradGuard no_grad;
  for (int64_t i = 0; i < logits.numel(); i += 3) {
    at::Tensor plus = logits.detach().clone(), minus = logits.detach().clone();
    plus.view(-1)[i] += h;
    minus.view(-1)[i] -= h;
    const double fd = (sequence_logps(plus, ids, mask).sum().item<double>() -
                       sequence_logps(minus, ids, mask).sum().item<double>()) / (2 * h);
    EXPECT_NEAR(grad.view(-1)[i].item<double>(), fd, 2e-3) << "element " << i;
  }
}

// Logits 0 except one per position (a at token k): log p(token) is [token == k] a - log(e^a + V - 1)
// in closed form, and the gradient of the summed log-probs is onehot(token) - softmax. V = 2^20
// puts four positions in each chunk of about 2^22 logits, so the nine positions take three chunks.
// An fp32 log-sum-exp over 2^20 logits is good to about 2e-3; a position read from the wrong chunk
// would be off by 0.5 or more (a differs by 0.5 between positions, and only even ones add it).
TEST(FusedOpsTest, TokenLogProbsAcrossChunksEqualTheClosedForm) {
  const int64_t v = int64_t{1} << 20, t = 10;
  at::Tensor logits = at::zeros({1, t - 1, v});
  at::Tensor ids = at::zeros({1, t}, at::kLong);
  std::vector<double> a(t - 1), z(t - 1), expected(t - 1);
  std::vector<int64_t> peak(t - 1);
  double total = 0;
  for (int64_t p = 0; p < t - 1; ++p) {
    a[p] = 1.0 + 0.5 * double(p);
    peak[p] = 1000 * p + 7;
    const bool hit = p % 2 == 0;  // the next token is the peak token on even positions only
    logits[0][p][peak[p]] = a[p];
    ids[0][p + 1] = hit ? peak[p] : peak[p] + 1;
    z[p] = std::exp(a[p]) + double(v - 1);
    expected[p] = (hit ? a[p] : 0.0) - std::log(z[p]);
    total += expected[p];
  }
  logits.requires_grad_(true);
  const at::Tensor tok = gather_token_logps(logits, ids);
  for (int64_t p = 0; p < t - 1; ++p) EXPECT_NEAR(tok[0][p + 1].item<double>(), expected[p], 3e-3) << "position " << p;
  const at::Tensor seq = sequence_logps(logits, ids, at::ones({1, t}));
  EXPECT_NEAR(seq[0].item<double>(), total, 2e-2);
  const at::Tensor grad = torch::autograd::grad({seq.sum()}, {logits})[0];
  for (int64_t p = 0; p < t - 1; ++p) {
    const bool hit = p % 2 == 0;
    const double peak_p = std::exp(a[p]) / z[p];
    EXPECT_NEAR(grad[0][p][peak[p]].item<double>(), (hit ? 1.0 : 0.0) - peak_p, 1e-5) << "position " << p;
    if (!hit) {
      EXPECT_NEAR(grad[0][p][peak[p] + 1].item<double>(), 1.0 - 1.0 / z[p], 1e-5);
    }
    EXPECT_NEAR(grad[0][p][3].item<double>(), -1.0 / z[p], 1e-8);  // about -1e-6
  }
}

// logits (0, ln 3) give p = (1/4, 3/4), in fp32 and bf16.
TEST(FusedOpsTest, TokenLogProbsOfTwoTokensEqualTheHandValues) {
  const at::Tensor two = at::tensor({0.0f, std::log(3.0f)}).view({1, 1, 2});
  const at::Tensor then_one = at::tensor({int64_t(0), int64_t(1)}).view({1, 2});
  const at::Tensor then_zero = at::tensor({int64_t(1), int64_t(0)}).view({1, 2});
  EXPECT_NEAR(gather_token_logps(two, then_one)[0][1].item<double>(), std::log(0.75), 1e-6);
  EXPECT_EQ(gather_token_logps(two, then_one)[0][0].item<double>(), 0.0);
  EXPECT_NEAR(sequence_logps(two, then_zero, at::ones({1, 2}))[0].item<double>(), std::log(0.25), 1e-6);
  EXPECT_NEAR(sequence_logps(two.to(at::kBFloat16), then_zero, at::ones({1, 2}))[0].item<double>(),
              std::log(0.25), 1e-2);
  // A response mask of 0 drops the token.
  EXPECT_EQ(sequence_logps(two, then_zero, at::zeros({1, 2}))[0].item<double>(), 0.0);
}

TEST(FusedOpsTest, SoftTargetCrossEntropyMatchesLogSoftmaxAutograd) {
  at::manual_seed(3);
  const at::Tensor targets = at::rand({4, 6});  // unnormalised on purpose: the gradient scales with the sum
  const at::Tensor weights = at::randn({4});
  at::Tensor scores = (at::randn({4, 6}) * 2).requires_grad_(true);
  at::Tensor ref_scores = scores.detach().to(at::kDouble).requires_grad_(true);
  const at::Tensor ref = -(targets.to(at::kDouble) * ref_scores.log_softmax(-1)).sum(1);
  const at::Tensor got = soft_target_cross_entropy(scores, targets);
  EXPECT_LT(max_abs_diff(got, ref), 1e-5);
  const at::Tensor g = torch::autograd::grad({(got * weights).sum()}, {scores})[0];
  const at::Tensor g_ref = torch::autograd::grad({(ref * weights.to(at::kDouble)).sum()}, {ref_scores})[0];
  EXPECT_LT(max_abs_diff(g, g_ref), 1e-5);
}

// The toy model's forward and gradients against an MLP built here from its parameters with
// at::linear / at::relu, on hand-built inputs: one-hot prompt, plus the bag of response tokens so
// far (the model's documented input), for one-token rows and for padded three-token rows.
TEST(FusedOpsTest, ToyMlpMatchesPlainAutogradMlp) {
  const int64_t prompts = 4, responses = 10, hidden = 8;
  PluginLoader loader;
  PluginOptions options;
  options.set_scalar("hidden", std::to_string(hidden));
  options.set_scalar("layers", "3");
  std::shared_ptr<Model> model = loader.create_model("toy_mlp", options);
  model->add_scalar_head();
  std::map<std::string, at::Tensor> params;
  for (const auto& item : model->named_parameters()) params[item.key()] = item.value();
  ASSERT_EQ(params.size(), 8u);  // trunk.0, trunk.2, output, scalar_head: weight and bias each

  for (const int64_t length : {1, 3}) {
    at::manual_seed(4 + length);
    const int64_t batch = 5;
    at::Tensor ids = at::randint(0, responses, {batch, length}, at::kLong);
    ids.select(1, 0).copy_(at::randint(0, prompts, {batch}, at::kLong));
    at::Tensor attention = at::ones({batch, length}, at::kLong);
    if (length == 3) attention[1][2] = 0;  // a padded row
    // hand-built inputs
    at::Tensor features = at::zeros({batch, length, prompts + responses});
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 0; t < length; ++t) {
        features[b][t][ids[b][0].item<int64_t>()] = 1.0;
        for (int64_t s = 1; s <= t; ++s) {
          if (attention[b][s].item<int64_t>() == 1) features[b][t][prompts + ids[b][s].item<int64_t>()] += 1.0;
        }
      }
    }
    std::map<std::string, at::Tensor> leaf;
    for (const auto& [name, p] : params) leaf[name] = p.detach().clone().requires_grad_(true);
    const auto linear = [&](const at::Tensor& x, const std::string& name) {
      return at::linear(x, leaf[name + ".weight"], leaf[name + ".bias"]);
    };
    const at::Tensor h = at::relu(linear(at::relu(linear(features, "trunk.0")), "trunk.2"));
    const at::Tensor ref_logits = linear(h, "output");
    const at::Tensor ref_scalar = linear(h, "scalar_head").squeeze(-1);
    const at::Tensor w_logits = at::randn(ref_logits.sizes());
    const at::Tensor w_scalar = at::randn(ref_scalar.sizes());
    ((ref_logits * w_logits).sum() + (ref_scalar * w_scalar).sum()).backward();

    model->zero_grad();
    ModelInput input;
    input.input_ids = ids;
    input.attention_mask = attention;
    input.want_scalar = true;
    const ModelOutput out = model->forward(input);
    ASSERT_EQ(out.logits.sizes(), ref_logits.sizes());
    EXPECT_LT(max_abs_diff(out.logits, ref_logits), 1e-5) << "length " << length;
    const at::Tensor scalar = out.scalar;  // [B, 1] for one-token rows, [B, T] otherwise
    ASSERT_EQ(scalar.sizes(), ref_scalar.sizes());
    EXPECT_LT(max_abs_diff(scalar, ref_scalar), 1e-5) << "length " << length;
    ((out.logits * w_logits).sum() + (scalar * w_scalar).sum()).backward();
    for (const auto& [name, p] : params) {
      ASSERT_TRUE(p.grad().defined()) << name;
      EXPECT_LT(max_abs_diff(p.grad(), leaf[name].grad()), 1e-5) << name << ", length " << length;
    }
  }
}

}  // namespace
}  // namespace prefengine
