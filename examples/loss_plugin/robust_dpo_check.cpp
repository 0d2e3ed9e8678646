// Self-check of robust_dpo: the loss and its gradient against a closed form in plain doubles and
// against central finite differences of the plugin's own loss; extreme margins stay finite; a bad
// option throws. Exit status 0 when all hold.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "robust_dpo_loss.h"

namespace {

int failures = 0;

void check(bool ok, const char* what, double got, double want) {
  if (!ok) {
    std::printf("FAIL %s: got %.17g, want %.17g\n", what, got, want);
    ++failures;
  }
}

void check_close(double got, double want, double tol, const char* what) {
  check(std::fabs(got - want) <= tol * std::max(1.0, std::fabs(want)), what, got, want);
}

double log_sigmoid(double x) {
  return x < 0 ? x - std::log1p(std::exp(x)) : -std::log1p(std::exp(-x));
}
double sigmoid(double x) {
  return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
}

at::Tensor vec(const std::vector<double>& v) {
  return at::tensor(at::ArrayRef<double>(v), at::TensorOptions().dtype(at::kDouble));
}

}  // namespace

int main() {
  const double beta = 0.5, eps = 0.2;
  prefengine::PluginOptions options("loss");
  options.set_scalar("beta", "0.5");
  options.set_scalar("label_noise", "0.2");
  example::RobustDpoLoss loss(options);
  options.reject_unread();  // what the engine does after construction

  const std::vector<double> w{-1.2, -3.5, -0.3}, l{-2.0, -1.1, -4.4};
  const std::vector<double> rw{-1.5, -3.0, -0.9}, rl{-1.9, -1.5, -3.0};
  prefengine::PairwiseBatch batch;
  batch.chosen_logps = vec(w).requires_grad_(true);
  batch.rejected_logps = vec(l).requires_grad_(true);
  batch.ref_chosen_logps = vec(rw);
  batch.ref_rejected_logps = vec(rl);

  // Closed form: dL/dz = (-(1-eps)*sigma(-z) - eps*sigma(z)) / (1-2eps), dz/dlogp_w = beta.
  const double n = static_cast<double>(w.size());
  double want = 0;
  std::vector<double> want_grad;
  for (size_t i = 0; i < w.size(); ++i) {
    const double z = beta * ((w[i] - rw[i]) - (l[i] - rl[i]));
    want += ((1 - eps) * -log_sigmoid(z) + eps * log_sigmoid(-z)) / (1 - 2 * eps) / n;
    want_grad.push_back(beta * (-(1 - eps) * sigmoid(-z) - eps * sigmoid(z)) / (1 - 2 * eps) / n);
  }
  const at::Tensor value = loss.pairwise(batch).loss;
  check_close(value.item<double>(), want, 1e-12, "loss vs closed form");
  value.backward();
  const at::Tensor grad = batch.chosen_logps.grad();

  const double h = 1e-6;
  for (int64_t i = 0; i < static_cast<int64_t>(w.size()); ++i) {
    check_close(grad[i].item<double>(), want_grad[i], 1e-12, "dL/dlogp_w vs closed form");
    prefengine::PairwiseBatch plus = batch, minus = batch;
    plus.chosen_logps = batch.chosen_logps.detach().clone();
    minus.chosen_logps = batch.chosen_logps.detach().clone();
    plus.chosen_logps[i].add_(h);
    minus.chosen_logps[i].sub_(h);
    const double fd =
        (loss.pairwise(plus).loss.item<double>() - loss.pairwise(minus).loss.item<double>()) /
        (2 * h);
    check_close(grad[i].item<double>(), fd, 1e-7, "dL/dlogp_w vs finite differences");
  }

  // Margins of +-1e4 in fp32: no NaN or Inf.
  prefengine::PairwiseBatch extreme;
  extreme.chosen_logps = at::tensor({0.0f, -1e4f}).requires_grad_(true);
  extreme.rejected_logps = at::tensor({-1e4f, 0.0f});
  extreme.ref_chosen_logps = at::zeros({2});
  extreme.ref_rejected_logps = at::zeros({2});
  const at::Tensor extreme_loss = loss.pairwise(extreme).loss;
  extreme_loss.backward();
  check(std::isfinite(extreme_loss.item<double>()), "extreme loss finite",
        extreme_loss.item<double>(), 0);
  check(at::isfinite(extreme.chosen_logps.grad()).all().item<bool>(), "extreme grad finite", 0, 0);

  // A bad option names its key.
  prefengine::PluginOptions bad("loss");
  bad.set_scalar("label_noise", "0.5");
  try {
    example::RobustDpoLoss rejected(bad);
    check(false, "label_noise 0.5 rejected", 0, 0);
  } catch (const std::invalid_argument& e) {
    check(std::string(e.what()).find("label_noise") != std::string::npos, "message names the key",
          0, 0);
  }

  std::printf("%s (%d failures)\n",
              failures == 0 ? "robust_dpo: all checks passed" : "robust_dpo: FAILED", failures);
  return failures == 0 ? 0 : 1;
}
