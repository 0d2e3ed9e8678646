// Data-parallel scaling of `prefengine run --nproc N` on gloo: steps/s for 1 and 2 ranks at the
// same global batch, and the efficiency (2-rank steps/s over 1-rank steps/s; ideal 2.0 -> 100%).
//
// Each configuration runs twice, with S and 3S steps of an SFT stage, and steps/s is 2S over the
// difference in wall time, so process start-up, plugin loading and rendezvous cancel out.
// Every rank uses one intra-op thread: 1 rank = 1 core, 2 ranks = 2 cores.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

const char* kRunDir = "/tmp/prefengine-dist-bench-run";

double run_seconds(const std::string& exp, int nproc, int steps) {
  const std::string command = std::string(PREFENGINE_CLI) + " run " + exp + " --overwrite --output " + kRunDir +
                              " --nproc " + std::to_string(nproc) + " --set stages.sft.steps=" + std::to_string(steps) +
                              " > /dev/null 2>&1";
  const auto start = std::chrono::steady_clock::now();
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", command.c_str());
    std::exit(1);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int hidden = argc > 1 ? std::atoi(argv[1]) : 2048;
  const int layers = argc > 2 ? std::atoi(argv[2]) : 4;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 256;
  const int steps = argc > 4 ? std::atoi(argv[4]) : 10;
  const std::string exp = "/tmp/prefengine-dist-bench.yaml";
  {
    std::ofstream out(exp);
    out << "name: dist-bench\nseed: 0\nthreads: 1\n"
        << "model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: " << hidden << ", layers: " << layers << "}\n"
        << "stages:\n  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, "
        << "optimizer: {name: adam, lr: 1.0e-4}, batch_size: " << batch << ", steps: 1, log_every: 1000000}\n";
  }
  const double params = static_cast<double>(hidden + 1) * hidden * (layers - 1) + 2.0 * hidden * 16;
  std::printf("toy_mlp hidden %d, layers %d (~%.1fM parameters, %.0f MB of gradients), global batch %d, "
              "%d vs %d steps\n",
              hidden, layers, params / 1e6, params * 4 / 1e6, batch, steps, 3 * steps);
  double rate[3] = {0, 0, 0};
  for (int nproc : {1, 2}) {
    const double short_run = run_seconds(exp, nproc, steps);
    const double long_run = run_seconds(exp, nproc, 3 * steps);
    rate[nproc] = 2.0 * steps / (long_run - short_run);
    if (nproc == 2) {
      // rank 0's own account of the time its gradient all-reduces took in the long run
      std::ifstream log(std::string(kRunDir) + "/run.log");
      for (std::string line; std::getline(log, line);) {
        if (line.find("gradient all-reduces took") != std::string::npos) {
          std::printf("  rank 0, long run of %.2f s: %s\n", long_run, line.substr(line.find("data parallel")).c_str());
        }
      }
    }
    std::printf("%d rank%s: %.3f steps/s (%.2f s for %d steps, %.2f s for %d)\n", nproc, nproc == 1 ? " " : "s",
                rate[nproc], short_run, steps, long_run, 3 * steps);
  }
  std::printf("speed-up %.2fx, scaling efficiency %.0f%%\n", rate[2] / rate[1], 100.0 * rate[2] / (2.0 * rate[1]));
  return 0;
}
