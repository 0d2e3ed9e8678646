// sft: completion rows (mean token NLL), distribution rows (cross-entropy to a target), mixed
// batches; values from plain-double formulas, gradients against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "loss_test_util.h"
#include "sft_loss.h"

namespace prefengine {
namespace {

using plugins::losses::SftCrossEntropyLoss;
using namespace prefengine::testing;

SftCrossEntropyLoss make_loss() {
  PluginOptions options = make_options({});
  return SftCrossEntropyLoss(options);
}

const std::vector<double> kLogits{0.5, -1.0, 2.0, 0.0, 1.5, -0.5};  // 2 rows x 3 tokens
const std::vector<double> kTargets{0.2, 0.3, 0.5, 1.0, 0.0, 0.0};

// -sum_v q_v log softmax(z)_v in plain doubles.
double cross_entropy_ref(const double* z, const double* q, int v) {
  double m = z[0];
  for (int i = 1; i < v; ++i) m = std::max(m, z[i]);
  double s = 0;
  for (int i = 0; i < v; ++i) s += std::exp(z[i] - m);
  const double lse = m + std::log(s);
  double out = 0;
  for (int i = 0; i < v; ++i) out -= q[i] * (z[i] - lse);
  return out;
}

SftBatch distribution_batch() {
  SftBatch b;
  b.next_token_logits = vec(kLogits).view({2, 3});
  b.target_distribution = vec(kTargets).view({2, 3});
  b.has_distribution = at::ones({2}, at::kBool);
  return b;
}

TEST(SftLoss, CompletionRowsAreTheMeanTokenNll) {
  auto loss = make_loss();
  SftBatch b;
  b.logps = vec({-6.0, -1.5, -0.0});
  b.lengths = vec({3, 1, 0});  // a zero-length completion counts as one token
  b.has_distribution = at::zeros({3}, at::kBool);
  const double expected = (6.0 / 3 + 1.5 / 1 + 0.0) / 3;
  expect_close(to_double(loss.sft(b).loss), expected, 1e-12, "loss");
  // dL/dlogp_i = -1 / (3 * max(len_i, 1))
  b.logps = b.logps.clone().requires_grad_(true);
  loss.sft(b).loss.backward();
  expect_close(to_vec(b.logps.grad()), {-1.0 / 9, -1.0 / 3, -1.0 / 3}, 1e-12, "grad");
}

TEST(SftLoss, DistributionRowsAreTheCrossEntropyToTheTarget) {
  auto loss = make_loss();
  SftBatch b = distribution_batch();
  const double expected = (cross_entropy_ref(&kLogits[0], &kTargets[0], 3) +
                           cross_entropy_ref(&kLogits[3], &kTargets[3], 3)) / 2;
  expect_close(to_double(loss.sft(b).loss), expected, 1e-12, "loss");
  // gradient against central differences of the plugin's own loss
  b.next_token_logits = b.next_token_logits.clone().requires_grad_(true);
  loss.sft(b).loss.backward();
  const std::vector<double> grad = to_vec(b.next_token_logits.grad());
  for (int i = 0; i < 6; ++i) {
    SftBatch plus = distribution_batch(), minus = distribution_batch();
    plus.next_token_logits = plus.next_token_logits.clone();
    minus.next_token_logits = minus.next_token_logits.clone();
    plus.next_token_logits.view({-1})[i].add_(1e-6);
    minus.next_token_logits.view({-1})[i].sub_(1e-6);
    const double fd = (to_double(loss.sft(plus).loss) - to_double(loss.sft(minus).loss)) / 2e-6;
    EXPECT_NEAR(grad[i], fd, 1e-7) << "logit " << i;
  }
  // closed form: (softmax(z) - q) / B
  EXPECT_NEAR(grad[3], (std::exp(0.0) / (1 + std::exp(1.5) + std::exp(-0.5)) - 1.0) / 2, 1e-12);
}

TEST(SftLoss, MixedBatchesPickEachRowsTarget) {
  auto loss = make_loss();
  SftBatch b = distribution_batch();
  b.has_distribution = at::tensor({1, 0}, at::kLong).to(at::kBool);
  b.logps = vec({0.0, -4.0});
  b.lengths = vec({0, 2});
  const double expected = (cross_entropy_ref(&kLogits[0], &kTargets[0], 3) + 4.0 / 2) / 2;
  expect_close(to_double(loss.sft(b).loss), expected, 1e-12, "loss");
}

TEST(SftLoss, MissingInputsAreNamed) {
  auto loss = make_loss();
  SftBatch b;
  b.has_distribution = at::ones({2}, at::kBool);
  try {
    loss.sft(b);
    ADD_FAILURE() << "no error without logits";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("next_token_logits"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace prefengine
