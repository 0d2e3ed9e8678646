#pragma once
// Sweeps and seeds. An experiment file may add two top-level keys:
//
//   sweep: {stages.dpo.loss.beta_rejected: [0.1, 0.05, 0.02]}   # a grid over any --set path
//   seeds: [0, 1, 2]
//
// The grid is the product of the axes (in file order); every point runs once per seed. A value
// may be a map (e.g. a whole `stages.dpo.loss` block), which replaces the block.
#include <cstdint>
#include <string>
#include <vector>

namespace prefengine {

struct SweepRun {
  std::string point;        // the grid point, e.g. "beta_rejected=0.05" ("base" without axes)
  int64_t seed = 0;
  std::string name;         // file-system name: point + "-seed" + seed, sanitised
  std::string config_yaml;  // the child's experiment: overrides applied, sweep/seeds removed,
                            // `seed` set and `sweep_point: {axis path: value, ...}` added
};

struct SweepPlan {
  std::string source;                  // the experiment file
  std::string name;                    // the experiment's name
  std::vector<std::string> axes;       // the swept paths
  std::vector<std::string> points;     // grid points in order
  std::vector<int64_t> seeds;          // the seeds (the file's `seed` when `seeds` is absent)
  std::vector<SweepRun> runs;          // points x seeds, point-major
};

// True when the file has a top-level `sweep` or `seeds` key.
bool is_sweep_file(const std::string& path);

// Expands the file (after the user's --set overrides) into its runs. Every child config is
// parsed and validated as an experiment, so a bad point fails before anything runs.
SweepPlan plan_sweep(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace prefengine
