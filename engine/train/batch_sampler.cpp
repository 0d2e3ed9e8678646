#include "engine/train/batch_sampler.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace prefengine {

BatchSampler::BatchSampler(int64_t n, bool shuffle, uint64_t seed) : n_(n), shuffle_(shuffle), rng_(seed) {
  if (n_ <= 0) throw std::invalid_argument("a stage needs at least one record");
  next_epoch();
}

std::vector<int64_t> BatchSampler::next(int64_t count) {
  std::vector<int64_t> batch;
  batch.reserve(static_cast<size_t>(count));
  while (static_cast<int64_t>(batch.size()) < count) {
    if (cursor_ == n_) next_epoch();
    batch.push_back(order_[static_cast<size_t>(cursor_++)]);
  }
  return batch;
}

nlohmann::json BatchSampler::state() const {
  std::ostringstream rng;
  rng << rng_;
  return {{"rng", rng.str()}, {"order", order_}, {"cursor", cursor_}};
}

void BatchSampler::load(const nlohmann::json& state, const std::string& where) {
  auto fail = [&](const std::string& field, const std::string& expected) {
    throw std::invalid_argument(where + ": sampler." + field + ": expected " + expected);
  };
  if (!state.is_object()) fail("", "an object with rng, order and cursor");
  for (const char* key : {"rng", "order", "cursor"}) {
    if (!state.contains(key)) fail(key, "a value (the key is missing)");
  }
  if (!state["rng"].is_string()) fail("rng", "the generator state as a string");
  if (!state["order"].is_array()) fail("order", "a list of record indices");
  if (!state["cursor"].is_number_integer()) fail("cursor", "an integer");
  std::vector<int64_t> order = state["order"].get<std::vector<int64_t>>();
  const int64_t cursor = state["cursor"].get<int64_t>();
  if (static_cast<int64_t>(order.size()) != n_) {
    fail("order", std::to_string(n_) + " indices (the stage's records), got " + std::to_string(order.size()));
  }
  std::vector<bool> seen(static_cast<size_t>(n_), false);
  for (int64_t i : order) {
    if (i < 0 || i >= n_ || seen[static_cast<size_t>(i)]) fail("order", "a permutation of 0.." + std::to_string(n_ - 1));
    seen[static_cast<size_t>(i)] = true;
  }
  if (cursor < 0 || cursor > n_) fail("cursor", "a position in 0.." + std::to_string(n_));
  std::istringstream rng(state["rng"].get<std::string>());
  std::mt19937_64 restored;
  rng >> restored;
  if (rng.fail()) fail("rng", "a saved generator state");
  rng_ = restored;
  order_ = std::move(order);
  cursor_ = cursor;
}

void BatchSampler::next_epoch() {
  order_.resize(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) order_[static_cast<size_t>(i)] = i;
  if (shuffle_) std::shuffle(order_.begin(), order_.end(), rng_);
  cursor_ = 0;
}

}  // namespace prefengine
