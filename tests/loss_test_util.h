#pragma once
// Shared helpers of the loss plugin tests: hand-made batches, autograd and finite-difference
// gradients of a plugin's loss, and plain-double references (written here, not taken from the
// code under test).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::testing {

// ---- plain-double references -------------------------------------------------------------

// log(sigmoid(x)) without overflow for any finite x.
inline double log_sigmoid_ref(double x) {
  return x < 0 ? x - std::log1p(std::exp(x)) : -std::log1p(std::exp(-x));
}

inline double sigmoid_ref(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

inline double mean_ref(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// ---- tensors and options ------------------------------------------------------------------

inline at::Tensor vec(const std::vector<double>& v, at::ScalarType dtype = at::kDouble) {
  return at::tensor(at::ArrayRef<double>(v), at::TensorOptions().dtype(at::kDouble)).to(dtype);
}

inline std::vector<double> to_vec(const at::Tensor& t) {
  const at::Tensor d = t.detach().to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

inline double to_double(const at::Tensor& t) { return t.detach().to(at::kDouble).item<double>(); }

// The options a config block `loss: {plugin: ..., key: value, ...}` hands over.
inline PluginOptions make_options(const std::map<std::string, std::string>& values) {
  PluginOptions options("stages[1].loss", "test.yaml:7:5");
  for (const auto& [key, value] : values) options.set_scalar(key, value);
  return options;
}

// Expects `make` to throw std::invalid_argument whose message names the option `key`.
template <typename Make>
void expect_option_error(Make make, const std::string& key) {
  try {
    make();
    ADD_FAILURE() << "no exception for a bad '" << key << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("stages[1].loss." + key), std::string::npos)
        << "message does not name the key: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "a bad '" << key << "' threw something other than std::invalid_argument";
  }
}

// ---- gradients ------------------------------------------------------------------------------

using Field = at::Tensor PairwiseBatch::*;

inline double loss_value(PairwiseLoss& loss, const PairwiseBatch& batch) {
  return to_double(loss.pairwise(batch).loss);
}

inline double metric(const LossOutput& out, const std::string& name) {
  for (const auto& [key, value] : out.metrics) {
    if (key == name) {
      EXPECT_FALSE(value.requires_grad()) << name << " is not detached";
      EXPECT_EQ(value.dim(), 0) << name << " is not a scalar";
      return to_double(value);
    }
  }
  ADD_FAILURE() << "metric " << name << " missing";
  return std::nan("");
}

// dL/d(batch.*field) by autograd: the field becomes a fresh leaf that requires grad.
inline std::vector<double> autograd_grad(PairwiseLoss& loss, PairwiseBatch batch, Field field) {
  batch.*field = (batch.*field).detach().clone().requires_grad_(true);
  const at::Tensor leaf = batch.*field;
  LossOutput out = loss.pairwise(batch);
  out.loss.backward();
  EXPECT_TRUE(leaf.grad().defined());
  return to_vec(leaf.grad());
}

// dL/d(batch.*field) by central differences of the plugin's own loss (double tensors).
inline std::vector<double> finite_difference_grad(PairwiseLoss& loss, const PairwiseBatch& batch,
                                                  Field field, double step = 1e-6) {
  const at::Tensor base = (batch.*field).detach().to(at::kDouble);
  std::vector<double> grad(static_cast<size_t>(base.numel()));
  for (int64_t i = 0; i < base.numel(); ++i) {
    PairwiseBatch plus = batch;
    PairwiseBatch minus = batch;
    plus.*field = base.clone();
    minus.*field = base.clone();
    (plus.*field).select(0, i).add_(step);
    (minus.*field).select(0, i).sub_(step);
    grad[static_cast<size_t>(i)] = (loss_value(loss, plus) - loss_value(loss, minus)) / (2 * step);
  }
  return grad;
}

// |actual - expected| <= tolerance * max(1, |expected|), element by element.
inline void expect_close(const std::vector<double>& actual, const std::vector<double>& expected,
                         double tolerance, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance * std::max(1.0, std::fabs(expected[i])))
        << what << " [" << i << "]";
  }
}

inline void expect_close(double actual, double expected, double tolerance,
                         const std::string& what) {
  EXPECT_NEAR(actual, expected, tolerance * std::max(1.0, std::fabs(expected))) << what;
}

inline void expect_all_finite(const std::vector<double>& values, const std::string& what) {
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_TRUE(std::isfinite(values[i])) << what << " [" << i << "] = " << values[i];
  }
}

}  // namespace prefengine::testing
