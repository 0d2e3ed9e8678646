// The built loss plugin libraries: loaded with dlopen as the engine's loader would, each exports
// the ABI version, its info and a factory; the object it creates is a prefengine::PairwiseLoss across the
// library boundary, asks for what the table below says, computes a finite loss on exactly those
// tensors, and reports a bad option as std::invalid_argument.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <string>

#include "loss_test_util.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin.h"

namespace prefengine {
namespace {

using namespace prefengine::testing;

struct Case {
  const char* name;
  LossRequirements requirements;
  const char* bad_key;  // an option that rejects "-1"
};

// What ctest shows for a parameter: the plugin's name, not the bytes of the struct.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

LossRequirements needs(bool reference, bool policy, bool scalar_head) {
  LossRequirements r;
  r.reference_logps = reference;
  r.policy_logps = policy;
  r.token_logps = false;
  r.scalar_head = scalar_head;
  return r;
}

class LossPluginLoadTest : public ::testing::TestWithParam<Case> {};

struct Library {
  void* handle = nullptr;
  ~Library() {
    if (handle) dlclose(handle);
  }
  template <typename F>
  F symbol(const char* name) {
    void* p = dlsym(handle, name);
    EXPECT_NE(p, nullptr) << name << ": " << dlerror();
    return reinterpret_cast<F>(p);
  }
};

TEST_P(LossPluginLoadTest, LoadsCreatesAndComputes) {
  const Case& c = GetParam();
  const std::string path = std::string(PREFENGINE_PLUGIN_DIR) + "/libprefengine_loss_" + c.name + ".so";
  Library library;
  library.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(library.handle, nullptr) << dlerror();

  auto abi = library.symbol<int (*)()>(PREFENGINE_PLUGIN_SYMBOL_ABI);
  auto info = library.symbol<const PluginInfo* (*)()>(PREFENGINE_PLUGIN_SYMBOL_INFO);
  auto create = library.symbol<Plugin* (*)(PluginOptions&)>(PREFENGINE_PLUGIN_SYMBOL_CREATE);
  ASSERT_TRUE(abi && info && create);
  EXPECT_EQ(abi(), kPluginAbiVersion);
  EXPECT_STREQ(info()->name, c.name);
  EXPECT_EQ(info()->kind, PluginKind::kLoss);
  EXPECT_GT(std::string(info()->description).size(), 10u);

  {
    PluginOptions options = make_options({});
    std::unique_ptr<Plugin> plugin(create(options));
    options.reject_unread();
    PairwiseLoss* loss = dynamic_cast<PairwiseLoss*>(plugin.get());
    ASSERT_NE(loss, nullptr) << "the created object is not a prefengine::PairwiseLoss";

    const LossRequirements r = loss->requirements();
    EXPECT_EQ(r.reference_logps, c.requirements.reference_logps);
    EXPECT_EQ(r.policy_logps, c.requirements.policy_logps);
    EXPECT_EQ(r.token_logps, c.requirements.token_logps);
    EXPECT_EQ(r.scalar_head, c.requirements.scalar_head);

    // Exactly what was asked for, in fp32 as the engine hands it over.
    PairwiseBatch batch;
    batch.chosen_lengths = vec({3, 5}, at::kFloat);
    batch.rejected_lengths = vec({4, 2}, at::kFloat);
    at::Tensor leaf;
    if (r.policy_logps) {
      leaf = vec({-3.0, -9.0}, at::kFloat).requires_grad_(true);
      batch.chosen_logps = leaf;
      batch.rejected_logps = vec({-4.0, -7.0}, at::kFloat);
    }
    if (r.reference_logps) {
      batch.ref_chosen_logps = vec({-3.5, -8.0}, at::kFloat);
      batch.ref_rejected_logps = vec({-3.5, -8.0}, at::kFloat);
    }
    if (r.scalar_head) {
      leaf = vec({0.5, -0.2}, at::kFloat).requires_grad_(true);
      batch.chosen_rewards = leaf;
      batch.rejected_rewards = vec({0.1, 0.3}, at::kFloat);
    }
    const LossOutput out = loss->pairwise(batch);
    ASSERT_EQ(out.loss.dim(), 0);
    EXPECT_TRUE(std::isfinite(to_double(out.loss)));
    out.loss.backward();
    ASSERT_TRUE(leaf.grad().defined());
    expect_all_finite(to_vec(leaf.grad()), "gradient");
    EXPECT_FALSE(out.metrics.empty());

    // On a step whose metrics are not logged the loss is the same and the metrics are skipped.
    batch.want_metrics = false;
    const LossOutput quiet = loss->pairwise(batch);
    EXPECT_EQ(to_double(quiet.loss), to_double(out.loss));
    EXPECT_TRUE(quiet.metrics.empty());
  }

  // An exception thrown inside the library reaches the host as std::invalid_argument.
  PluginOptions bad = make_options({{c.bad_key, "-1"}});
  EXPECT_THROW(std::unique_ptr<Plugin>(create(bad)), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(
    Losses, LossPluginLoadTest,
    ::testing::Values(Case{"dpo", needs(true, true, false), "beta"},
                      Case{"flex_dpo", needs(true, true, false), "beta_rejected"},
                      Case{"adaptive_dpo", needs(true, true, false), "gain"},
                      Case{"dpo_sft", needs(true, true, false), "sft_weight"},
                      Case{"ipo", needs(true, true, false), "tau"},
                      Case{"slic", needs(false, true, false), "delta"},
                      Case{"rm", needs(false, false, true), "margin"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace prefengine
