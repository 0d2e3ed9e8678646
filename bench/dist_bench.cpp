// Data-parallel scaling of `prefengine run --nproc N` on gloo: steady-state steps/s for 1 and 2
// ranks at the same global batch, and the efficiency (2-rank steps/s over 1-rank steps/s; ideal
// 2.0 -> 100%).
//
// Steps/s is rank 0's `step_time` in run.json: the steps after the first, without checkpoint
// writes; for 2 ranks it includes the gradient all-reduce and the wait for the slower rank.
// Process start-up, plugin loading and the rendezvous (a few seconds, and most of the run-to-run
// variance on a shared machine) are reported apart. Each configuration runs `repeats` times,
// alternating 1 and 2 ranks; the best run counts. Every rank uses one intra-op thread: 1 rank =
// 1 core, 2 ranks = 2 cores.
//   dist_bench [hidden=2048] [layers=4] [batch=256] [steps=20] [repeats=3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace {

const char* kRunDir = "/tmp/prefengine-dist-bench-run";

struct Run {
  double wall = 0;          // the whole command
  double step_rate = 0;     // steady-state steps/s (rank 0's step_time)
  double stage_seconds = 0; // the stage, rank 0
  std::string allreduce;    // rank 0's account of its all-reduces
};

Run run_once(const std::string& exp, int nproc, int steps) {
  const std::string command = std::string(PREFENGINE_CLI) + " run " + exp + " --overwrite --output " + kRunDir +
                              " --nproc " + std::to_string(nproc) + " --set stages.sft.steps=" + std::to_string(steps) +
                              " > /dev/null 2>&1";
  const auto start = std::chrono::steady_clock::now();
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", command.c_str());
    std::exit(1);
  }
  Run run;
  run.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ifstream status(std::string(kRunDir) + "/run.json");
  const auto stage = nlohmann::json::parse(status)["stages"][0];
  run.step_rate = stage["step_time"]["steps_per_second"].get<double>();
  run.stage_seconds = stage["seconds"].get<double>();
  std::ifstream log(std::string(kRunDir) + "/run.log");
  for (std::string line; std::getline(log, line);) {
    if (line.find("gradient all-reduces took") != std::string::npos) run.allreduce = line.substr(line.find("data parallel"));
  }
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  const int hidden = argc > 1 ? std::atoi(argv[1]) : 2048;
  const int layers = argc > 2 ? std::atoi(argv[2]) : 4;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 256;
  const int steps = argc > 4 ? std::atoi(argv[4]) : 20;
  const int repeats = argc > 5 ? std::atoi(argv[5]) : 3;
  const std::string exp = "/tmp/prefengine-dist-bench.yaml";
  {
    std::ofstream out(exp);
    out << "name: dist-bench\nseed: 0\nthreads: 1\n"
        << "model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: " << hidden << ", layers: " << layers << "}\n"
        << "stages:\n  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, "
        << "optimizer: {name: adam, lr: 1.0e-4}, batch_size: " << batch << ", steps: 1, log_every: 1000000}\n";
  }
  const double params = static_cast<double>(hidden + 1) * hidden * (layers - 1) + 2.0 * hidden * 16;
  std::printf("toy_mlp hidden %d, layers %d (~%.1fM parameters, %.0f MB of gradients), global batch %d, %d steps, "
              "best of %d\n",
              hidden, layers, params / 1e6, params * 4 / 1e6, batch, steps, repeats);
  Run best[3];
  for (int r = 0; r < repeats; ++r) {
    for (int nproc : {1, 2}) {
      const Run run = run_once(exp, nproc, steps);
      std::printf("  %d rank%s: %.3f steps/s steady state, stage %.2f s, whole command %.2f s%s%s\n", nproc,
                  nproc == 1 ? " " : "s", run.step_rate, run.stage_seconds, run.wall, run.allreduce.empty() ? "" : "; ",
                  run.allreduce.c_str());
      if (run.step_rate > best[nproc].step_rate) best[nproc] = run;
    }
  }
  const double speedup = best[2].step_rate / best[1].step_rate;
  std::printf("best: 1 rank %.3f steps/s, 2 ranks %.3f steps/s: speed-up %.2fx, scaling efficiency %.0f%%\n",
              best[1].step_rate, best[2].step_rate, speedup, 50.0 * speedup);
  return 0;
}
