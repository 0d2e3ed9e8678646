#pragma once
// The stage's record sampler: batches of indices over [0, n), a fresh seeded permutation per
// epoch (when shuffling), wrapping across epochs so every draw has exactly the rows asked for.
// Its state (generator, this epoch's order, position) goes into every checkpoint.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefengine {

class BatchSampler {
 public:
  BatchSampler(int64_t n, bool shuffle, uint64_t seed);

  // The next `count` indices.
  std::vector<int64_t> next(int64_t count);
  // The generator, for a stage kind's own shuffles (PPO's minibatch order), so they resume too.
  std::mt19937_64& rng() { return rng_; }

  nlohmann::json state() const;
  // Restores state(); throws std::invalid_argument naming `where` and the field when it does not
  // fit this sampler (another data size, a cursor past the end, an order that is no permutation).
  void load(const nlohmann::json& state, const std::string& where);

 private:
  void next_epoch();
  int64_t n_;
  bool shuffle_;
  std::mt19937_64 rng_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
};

}  // namespace prefengine
