// Loads the built robust_dpo plugin by name through the SDK's PluginLoader, as the engine does
// (ABI, LibTorch version, kind and name checks included), and checks the loss it computes against
// the closed form, its metrics, and that an unknown option is rejected. This program is not
// linked with robust_dpo_loss.cpp: the loss can only come from the plugin library.
// usage: robust_dpo_load_check <directory holding libprefengine_loss_robust_dpo.so>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <prefengine/pairwise_loss.h>
#include <prefengine/plugin_loader.h>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <plugin directory>\n", argv[0]);
    return 2;
  }
  try {
    // The three lines an outside program needs: a loader on the directory, options, create.
    prefengine::PluginLoader loader({argv[1]});
    prefengine::PluginOptions options("loss");
    options.set_scalar("beta", "0.5");
    options.set_scalar("label_noise", "0.2");
    std::shared_ptr<prefengine::Loss> created = loader.create_loss("robust_dpo", options);
    auto loss = std::dynamic_pointer_cast<prefengine::PairwiseLoss>(created);
    check(loss != nullptr, "robust_dpo is a PairwiseLoss");
    if (!loss) return 1;

    // One pair: z = beta * ((w - rw) - (l - rl)) = 0.5 * ((-1 + 1.5) - (-2 + 1.5)) = 0.5.
    prefengine::PairwiseBatch batch;
    batch.chosen_logps = at::tensor({-1.0}, at::kDouble);
    batch.rejected_logps = at::tensor({-2.0}, at::kDouble);
    batch.ref_chosen_logps = at::tensor({-1.5}, at::kDouble);
    batch.ref_rejected_logps = at::tensor({-1.5}, at::kDouble);
    const double z = 0.5, eps = 0.2;
    // -log sigma(z) = log1p(exp(-z)); L = ((1 - eps) (-log sigma(z)) - eps (-log sigma(-z))) / (1 - 2 eps)
    const double want = ((1 - eps) * std::log1p(std::exp(-z)) - eps * std::log1p(std::exp(z))) / (1 - 2 * eps);
    const prefengine::LossOutput out = loss->pairwise(batch);
    const double got = out.loss.item<double>();
    check(std::fabs(got - want) < 1e-12,
          "loss through the loader: got " + std::to_string(got) + ", want " + std::to_string(want));
    check(out.metrics.size() == 4 && out.metrics[3].first == "rewards/accuracies",
          "the four rewards/* metrics");

    // The loader rejects keys the plugin did not read, naming the nearest one.
    prefengine::PluginOptions bad("loss");
    bad.set_scalar("betta", "0.5");
    try {
      loader.create_loss("robust_dpo", bad);
      check(false, "unknown key 'betta' rejected");
    } catch (const std::invalid_argument& e) {
      check(std::string(e.what()).find("did you mean 'beta'") != std::string::npos,
            std::string("unknown key message names 'beta': ") + e.what());
    }
  } catch (const std::exception& e) {
    std::printf("FAIL %s\n", e.what());
    return 1;
  }
  std::printf("%s (%d failures)\n",
              failures == 0 ? "robust_dpo via PluginLoader: all checks passed" : "robust_dpo via PluginLoader: FAILED",
              failures);
  return failures == 0 ? 0 : 1;
}
