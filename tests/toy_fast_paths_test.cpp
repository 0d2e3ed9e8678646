// The toy loop's fast paths against the general code they stand in for, bit for bit where the
// arithmetic is the same, and against independent computations:
// - the token log-probs of one scored position (single-token responses) against the chunked path
//   of several positions, where a masked extra position leaves the same sums and gradients;
// - the toy MLP's gradients added straight into existing .grad() buffers against the gradients it
//   returns through autograd (no .grad() yet), and accumulated over two backward passes;
// - all_finite (the flat gradient's check every update) against std::isfinite per element.
// (The toy model outside autograd, DirectBackward: tests/direct_backward_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/module.h>

#include "engine/train/flat_optimizer.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/model.h"
#include "prefengine/plugin_loader.h"

namespace prefengine {
namespace {

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && at::equal(a, b);
}

// One scored position ([N, 1, V] logits, ids [N, 2]) through the single-position path, and the
// same logits as the second of two positions ([N, 2, V], ids [N, 3], the first position masked
// out) through the chunked path: the same log-probs and the same gradient, bit for bit.
TEST(ToyFastPathsTest, OneScoredPositionEqualsTheChunkedPath) {
  const int64_t n = 6, vocab = 10;
  at::manual_seed(11);
  const at::Tensor logits = at::randn({n, 1, vocab}) * 4;
  const at::Tensor ids = at::randint(0, vocab, {n, 2}, at::kLong);
  at::Tensor mask = at::ones({n, 2});
  mask[3][1] = 0;  // a row whose response token is context only
  const at::Tensor junk = at::randn({n, 1, vocab});
  const at::Tensor wide_logits = at::cat({junk, logits}, 1);
  const at::Tensor wide_ids = at::cat({ids.narrow(1, 0, 1), at::randint(0, vocab, {n, 1}, at::kLong),
                                       ids.narrow(1, 1, 1)}, 1);
  const at::Tensor wide_mask = at::cat({mask.narrow(1, 0, 1), at::zeros({n, 1}), mask.narrow(1, 1, 1)}, 1);
  const at::Tensor weights = at::randn({n});

  for (const bool reduce : {true, false}) {
    at::Tensor a = logits.clone().requires_grad_(true);
    at::Tensor b = wide_logits.clone().requires_grad_(true);
    const at::Tensor fast = reduce ? sequence_logps(a, ids, mask) : gather_token_logps(a, ids, mask).select(1, 1);
    const at::Tensor general =
        reduce ? sequence_logps(b, wide_ids, wide_mask) : gather_token_logps(b, wide_ids, wide_mask).select(1, 2);
    EXPECT_TRUE(same_bits(fast, general)) << "reduce " << reduce << "\n" << fast << general;
    EXPECT_EQ(fast[3].item<float>(), 0.0f);
    const at::Tensor ga = torch::autograd::grad({(fast * weights).sum()}, {a})[0];
    const at::Tensor gb = torch::autograd::grad({(general * weights).sum()}, {b})[0];
    EXPECT_TRUE(same_bits(ga.select(1, 0), gb.select(1, 1))) << "reduce " << reduce;
    // independent: d/dlogits of w * log softmax(logits)[y] is w (onehot(y) - softmax) on kept rows
    const at::Tensor soft = logits.select(1, 0).to(at::kDouble).softmax(-1);
    const at::Tensor onehot = at::one_hot(ids.select(1, 1), vocab).to(at::kDouble);
    const at::Tensor expected = (onehot - soft) * (weights * mask.select(1, 1)).to(at::kDouble).unsqueeze(1);
    EXPECT_LT((ga.select(1, 0).to(at::kDouble) - expected).abs().max().item<double>(), 1e-5);  // fp32 rounding
  }
}

std::shared_ptr<Model> toy_model(PluginLoader& loader) {
  PluginOptions options;
  options.set_scalar("hidden", "16");
  options.set_scalar("layers", "3");
  return loader.create_model("toy_mlp", options);
}

// The toy MLP's gradients through its fast path (.grad() buffers exist, as the engine's flat
// buffer makes them) equal those it returns to autograd (no .grad() yet), bit for bit; a second
// backward pass adds the same gradient again.
TEST(ToyFastPathsTest, ToyMlpGradientsIntoExistingBuffersEqualReturnedOnes) {
  PluginLoader loader;
  std::shared_ptr<Model> model = toy_model(loader);
  std::vector<at::Tensor> params = model->parameters();
  ASSERT_EQ(params.size(), 6u);
  at::manual_seed(12);
  at::Tensor ids = at::randint(0, 4, {9, 1}, at::kLong);
  const at::Tensor weights = at::randn({9, 1, 10});
  const auto backward = [&] {
    ModelInput input;
    input.input_ids = ids;
    (model->forward(input).logits * weights).sum().backward();
  };
  for (auto& p : params) p.mutable_grad() = at::Tensor();
  backward();  // returned gradients: AccumulateGrad takes them as .grad()
  std::vector<at::Tensor> returned;
  for (auto& p : params) {
    ASSERT_TRUE(p.grad().defined());
    returned.push_back(p.grad().clone());
    p.mutable_grad() = at::zeros_like(p);  // a buffer that exists: the fast path adds into it
  }
  const std::vector<void*> buffers = [&] {
    std::vector<void*> out;
    for (auto& p : params) out.push_back(p.grad().data_ptr());
    return out;
  }();
  backward();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].grad().data_ptr(), buffers[i]) << "parameter " << i << ": the buffer was replaced";
    EXPECT_TRUE(same_bits(params[i].grad(), returned[i])) << "parameter " << i;
  }
  backward();  // accumulates: x + x is exact
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(same_bits(params[i].grad(), returned[i] * 2)) << "parameter " << i;
  }
}

TEST(ToyFastPathsTest, AllFiniteAgreesWithIsfiniteOnEveryElement) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  at::Tensor t = at::full({1000}, 3.0e38f);  // finite, though a float sum of them overflows
  EXPECT_TRUE(all_finite(t));
  for (const float bad : {inf, -inf, nan}) {
    for (const int64_t at_index : {int64_t{0}, int64_t{517}, int64_t{999}}) {
      at::Tensor u = t.clone();
      u[at_index] = bad;
      bool expected = true;
      for (int64_t i = 0; i < u.numel(); ++i) expected = expected && std::isfinite(u[i].item<float>());
      EXPECT_EQ(all_finite(u), expected) << bad << " at " << at_index;
      EXPECT_FALSE(all_finite(u.to(at::kDouble))) << "the general path";
      EXPECT_FALSE(all_finite(u.view({20, 50}).t())) << "non-contiguous";
    }
  }
  EXPECT_TRUE(all_finite(at::tensor({-0.0f, 1e-45f, -3.4e38f})));
  EXPECT_TRUE(all_finite(at::empty({0})));
}

}  // namespace
}  // namespace prefengine
