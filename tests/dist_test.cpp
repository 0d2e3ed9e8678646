// Data parallelism: the communicators, the data-parallel pieces of the loop, `prefengine run
// --nproc N` against a 1-rank run, and what happens when a rank dies, hangs or finds its port taken.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <boost/filesystem.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/nn/module.h>

#include "engine/config/experiment_config.h"
#include "engine/dist/communicator.h"
#include "engine/dist/data_parallel.h"
#include "engine/dist/local_launcher.h"
#include "engine/metrics/metrics_logger.h"
#ifdef PREFENGINE_WITH_NCCL
#include "engine/dist/nccl_communicator.h"
#endif
#include "test_util.h"

namespace prefengine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// Config and environment

TEST(DistConfigTest, DistributedBlockParsesAndEveryRuleIsChecked) {
  const std::string base = "name: x\nmodel: {plugin: toy_mlp}\nstages:\n"
                           "  - {name: s, kind: sft, data: {path: d.jsonl}, steps: 1}\n";
  ExperimentConfig defaults = parse_experiment(base, "x.yaml");
  EXPECT_EQ(defaults.distributed.backend, "auto");
  EXPECT_EQ(defaults.distributed.timeout_s, 300);
  EXPECT_EQ(defaults.distributed.bucket_mb, 25);
  ExperimentConfig set = parse_experiment(base + "distributed: {backend: gloo, timeout_s: 7.5, bucket_mb: 0.5}\n", "x.yaml");
  EXPECT_EQ(set.distributed.backend, "gloo");
  EXPECT_EQ(set.distributed.timeout_s, 7.5);
  EXPECT_EQ(set.distributed.bucket_mb, 0.5);
  EXPECT_THROW(parse_experiment(base + "distributed: {timeout_s: 0}\n", "x.yaml"), std::invalid_argument);
  EXPECT_THROW(parse_experiment(base + "distributed: {timeout_s: -1}\n", "x.yaml"), std::invalid_argument);
  EXPECT_THROW(parse_experiment(base + "distributed: {bucket_mb: 0}\n", "x.yaml"), std::invalid_argument);
  EXPECT_THROW(parse_experiment(base + "distributed: {backend: mpi}\n", "x.yaml"), std::invalid_argument);
  EXPECT_THROW(parse_experiment(base + "distributed: {timeout: 5}\n", "x.yaml"), std::invalid_argument);
  try {
    parse_experiment(base + "distributed: {backend: ncl}\n", "x.yaml");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("nccl"), std::string::npos) << e.what();
  }
  DistributedOptions options;
  options.timeout_s = 0;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options = {};
  options.bucket_mb = -1;
  EXPECT_THROW(options.validate(), std::invalid_argument);
  options = {};
  options.backend = "mpi";
  EXPECT_THROW(options.validate(), std::invalid_argument);
}

class ScopedEnv {
 public:
  explicit ScopedEnv(std::vector<std::pair<std::string, std::string>> vars) {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                             "SLURM_NTASKS", "SLURM_LOCALID"}) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                             "SLURM_NTASKS", "SLURM_LOCALID"}) {
      ::unsetenv(name);
    }
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
  }

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(DistributedEnvTest, ReadsTorchrunThenSlurmVariables) {
  {
    ScopedEnv env({});
    const DistributedEnv e = DistributedEnv::from_environment();
    EXPECT_EQ(e.rank, 0);
    EXPECT_EQ(e.world_size, 1);
    EXPECT_EQ(e.master_port, 29500);
  }
  {
    ScopedEnv env({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}});
    const DistributedEnv e = DistributedEnv::from_environment();
    EXPECT_EQ(e.rank, 3);
    EXPECT_EQ(e.world_size, 4);
    EXPECT_EQ(e.local_rank, 1);
    EXPECT_EQ(e.master_addr, "node7");
    EXPECT_EQ(e.master_port, 1234);
  }
  {
    ScopedEnv env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}});
    const DistributedEnv e = DistributedEnv::from_environment();
    EXPECT_EQ(e.rank, 5);
    EXPECT_EQ(e.world_size, 8);
    EXPECT_EQ(e.local_rank, 1);
  }
  {
    ScopedEnv env({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
    EXPECT_THROW(DistributedEnv::from_environment(), std::invalid_argument);
  }
  {
    ScopedEnv env({{"RANK", "one"}, {"WORLD_SIZE", "2"}});
    try {
      DistributedEnv::from_environment();
      FAIL() << "no error";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("RANK"), std::string::npos) << e.what();
    }
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}});
    EXPECT_THROW(DistributedEnv::from_environment(), std::invalid_argument);
  }
}

TEST(CommunicatorTest, SingleProcessIsTheIdentity) {
  DistributedEnv env;
  auto comm = create_communicator(DistributedOptions{}, env);
  EXPECT_EQ(comm->backend(), "single");
  at::Tensor t = at::arange(4, at::kFloat);
  comm->all_reduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::arange(4, at::kFloat)));
  EXPECT_TRUE(at::equal(comm->all_gather(t), t));
  DataParallel dp(std::move(comm), DistributedOptions{});
  EXPECT_TRUE(dp.is_writer());
  at::Tensor index = at::arange(6, at::kLong);
  EXPECT_TRUE(at::equal(dp.shard(index), index));
}

// ---------------------------------------------------------------------------------------------
// gloo: two ranks as two threads of this process

// Runs body(rank, communicator) on two gloo ranks at once; rethrows the first failure.
void with_two_gloo_ranks(const std::function<void(int, std::unique_ptr<Communicator>&)>& body, double timeout_s = 20,
                         int port = 0) {
  if (port == 0) port = find_free_port();
  std::array<std::exception_ptr, 2> errors;
  auto rank_main = [&](int rank) {
    try {
      DistributedEnv env;
      env.rank = rank;
      env.world_size = 2;
      env.master_port = port;
      auto comm = make_gloo_communicator(env, std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
      body(rank, comm);
    } catch (...) {
      errors[rank] = std::current_exception();
    }
  };
  std::thread other(rank_main, 1);
  rank_main(0);
  other.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

TEST(GlooCommunicatorTest, AllReduceAllGatherBroadcastBarrier) {
  with_two_gloo_ranks([](int rank, std::unique_ptr<Communicator>& comm) {
    EXPECT_EQ(comm->backend(), "gloo");
    EXPECT_EQ(comm->rank(), rank);
    EXPECT_EQ(comm->world_size(), 2);
    at::Tensor a = at::full({5}, static_cast<float>(rank + 1));
    at::Tensor b = at::arange(3, at::kDouble) * (rank == 0 ? 1 : 10);
    std::vector<at::Tensor> both{a, b};
    comm->all_reduce_sum(both);
    EXPECT_TRUE(at::equal(a, at::full({5}, 3.0f)));
    EXPECT_TRUE(at::allclose(b, at::arange(3, at::kDouble) * 11));
    const at::Tensor gathered = comm->all_gather(at::full({2}, static_cast<int64_t>(rank), at::kLong));
    EXPECT_TRUE(at::equal(gathered, at::tensor(std::vector<int64_t>{0, 0, 1, 1}, at::kLong)));
    at::Tensor c = at::full({4}, rank == 0 ? 7.0f : -1.0f);
    comm->broadcast(c, 0);
    EXPECT_TRUE(at::equal(c, at::full({4}, 7.0f)));
    comm->barrier();
  });
}

TEST(GlooCommunicatorTest, TorchrunAgentStoreIsJoinedNotHosted) {
  // torchrun's agent hosts the store at MASTER_PORT and sets TORCHELASTIC_USE_AGENT_STORE=True;
  // rank 0 hosting a second one there would fail with the port in use.
  const int port = find_free_port();
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(port);
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(20);
  auto agent = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
  ::setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
  ::setenv("TORCHELASTIC_RESTART_COUNT", "2", 1);
  try {
    with_two_gloo_ranks(
        [](int rank, std::unique_ptr<Communicator>& comm) {
          at::Tensor t = at::full({3}, static_cast<float>(rank + 1));
          comm->all_reduce_sum(t);
          EXPECT_TRUE(at::equal(t, at::full({3}, 3.0f)));
        },
        /*timeout_s=*/20, port);
  } catch (...) {
    ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
    ::unsetenv("TORCHELASTIC_RESTART_COUNT");
    throw;
  }
  ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
  ::unsetenv("TORCHELASTIC_RESTART_COUNT");
  // The ranks' keys sit apart from the agent's, under this attempt's prefix.
  EXPECT_TRUE(agent->check({"prefengine/attempt_2/collectives/0", "prefengine/attempt_2/collectives/1"}));
}

TEST(DataParallelTest, ShardsAverageInBucketsReduceMetricsAndGather) {
  with_two_gloo_ranks([](int rank, std::unique_ptr<Communicator>& comm) {
    DistributedOptions options;
    options.bucket_mb = 12.0 / (1024 * 1024);  // 3 floats a bucket: 10 floats make 4 buckets
    DataParallel dp(std::move(comm), options);
    EXPECT_EQ(dp.is_writer(), rank == 0);
    // Disjoint contiguous halves of the same global batch.
    const at::Tensor global = at::tensor(std::vector<int64_t>{9, 4, 7, 1, 0, 3}, at::kLong);
    const at::Tensor mine = dp.shard(global);
    EXPECT_TRUE(at::equal(mine, global.slice(0, rank * 3, rank * 3 + 3)));
    EXPECT_THROW(dp.check_batch_size(5, "stage 'x'"), std::invalid_argument);
    EXPECT_NO_THROW(dp.check_batch_size(6, "stage 'x'"));
    // Gradients: the mean of the two ranks' buffers, in every bucket.
    at::Tensor grads = at::arange(10, at::kFloat) * (rank == 0 ? 1.0f : 3.0f);
    dp.average_gradients(grads);
    EXPECT_TRUE(at::allclose(grads, at::arange(10, at::kFloat) * 2.0f)) << grads;
    // Metrics: means over 2 and 6 rows -> the mean over 8 rows.
    MetricsRow row;
    row.set("loss", rank == 0 ? 1.0 : 3.0);
    row.set("acc", rank == 0 ? 0.5 : 0.25);
    dp.reduce_means(row, rank == 0 ? 2.0 : 6.0);
    EXPECT_DOUBLE_EQ(*row.find("loss"), (2 * 1.0 + 6 * 3.0) / 8);
    EXPECT_DOUBLE_EQ(*row.find("acc"), (2 * 0.5 + 6 * 0.25) / 8);
    // Rows gathered in rank order.
    EXPECT_TRUE(at::equal(dp.gather_rows(at::full({2}, rank + 1.0f)), at::tensor({1.0f, 1.0f, 2.0f, 2.0f})));
    // Sharded work: 5 rows over 2 ranks (3 + 2), each rank computing only its own.
    std::vector<std::pair<int64_t, int64_t>> calls;
    const at::Tensor all = dp.sharded_rows(5, [&](int64_t begin, int64_t end) {
      calls.emplace_back(begin, end);
      return at::arange(begin, end, at::kFloat) * 10;
    });
    EXPECT_TRUE(at::equal(all, at::arange(5, at::kFloat) * 10)) << all;
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0].first, rank == 0 ? 0 : 3);
    EXPECT_EQ(calls[0].second, rank == 0 ? 3 : 5);
    // Parameters: broadcast makes them equal; a difference is caught.
    at::Tensor values = at::full({6}, rank == 0 ? 0.25f : 0.5f);
    dp.broadcast_parameters(values);
    EXPECT_TRUE(at::equal(values, at::full({6}, 0.25f)));
    EXPECT_NO_THROW(dp.check_replicas(values, "stage 's'"));
    // A module's parameters and buffers, in one broadcast.
    torch::nn::Module module;
    at::Tensor weight = module.register_parameter("weight", at::full({2, 3}, rank == 0 ? 1.5f : -4.0f));
    at::Tensor steps = module.register_buffer("steps", at::full({2}, rank == 0 ? 7 : 9, at::kLong));
    dp.broadcast_module(module);
    EXPECT_TRUE(at::equal(weight, at::full({2, 3}, 1.5f)));
    EXPECT_TRUE(at::equal(steps, at::full({2}, 7, at::kLong)));
    EXPECT_TRUE(weight.requires_grad());
    if (rank == 1) values[3] = std::nextafter(0.25f, 1.0f);
    EXPECT_THROW(dp.check_replicas(values, "stage 's'"), std::runtime_error);
  });
}

TEST(GlooCommunicatorTest, MissingPeerIsARendezvousErrorWithinTheTimeout) {
  DistributedEnv env;
  env.world_size = 2;
  env.master_port = find_free_port();
  const auto start = Clock::now();
  try {
    make_gloo_communicator(env, std::chrono::milliseconds(1500));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("rank 0 of 2 (gloo): rendezvous at 127.0.0.1:"), std::string::npos) << message;
    EXPECT_NE(message.find("1.5 s"), std::string::npos) << message;
  }
  EXPECT_LT(seconds_since(start), 1.5 + 5);
}

// Listens on a free port on 127.0.0.1 until destroyed.
class BusyPort {
 public:
  BusyPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~BusyPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(GlooCommunicatorTest, PortInUseIsAClearError) {
  BusyPort busy;
  DistributedEnv env;
  env.world_size = 2;
  env.master_port = busy.port();
  try {
    make_gloo_communicator(env, std::chrono::milliseconds(2000));
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_PORT " + std::to_string(busy.port()) + " is already in use"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(check_port_free(busy.port()), std::runtime_error);
}

// ---------------------------------------------------------------------------------------------
// NCCL: compiled in wherever CUDA and NCCL are found; without a GPU it must refuse clearly.

TEST(NcclCommunicatorTest, CompiledInAndRefusesClearlyWithoutAGpu) {
  EXPECT_EQ(nccl_compiled_in(), static_cast<bool>(PREFENGINE_EXPECT_NCCL));
  DistributedEnv env;  // one rank: no store needed
  DistributedOptions options;
  options.backend = "nccl";
  std::unique_ptr<Communicator> comm;
  try {
    comm = create_communicator(options, env);
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    if (nccl_compiled_in()) {
      EXPECT_NE(message.find("rank 0 of 1 (nccl): no usable CUDA device"), std::string::npos) << message;
      EXPECT_NE(message.find("use distributed.backend gloo"), std::string::npos) << message;
    } else {
      EXPECT_NE(message.find("built without NCCL"), std::string::npos) << message;
    }
    return;
  }
  // A GPU host: one rank's sum is its own buffer, staged through the device.
  ASSERT_TRUE(nccl_compiled_in());
  EXPECT_EQ(comm->backend(), "nccl");
  at::Tensor t = at::arange(1000, at::kFloat);
  comm->all_reduce_sum(t);
  EXPECT_TRUE(at::equal(t, at::arange(1000, at::kFloat)));
  EXPECT_TRUE(at::equal(comm->all_gather(t), t));
  comm->barrier();
}

// ---------------------------------------------------------------------------------------------
// The executable: `--nproc 2` against one rank, and faults.

using Result = testing::CommandResult;
using testing::run_cli;

std::string write_experiment(const std::string& dir, const std::string& yaml) {
  return testing::write_file(dir + "/exp.yaml", yaml);
}

// The tolerance of a 2-rank run against 1 rank: the same math in another summation order (two
// half-batch means averaged instead of one mean), so float32 rounding differs in the last bits.
// Measured: the largest difference is below 5% of this bound. The DPO stage uses SGD: Adam's first
// steps divide tiny gradients by their own magnitude, which turns last-bit differences of
// near-zero gradient elements into lr-sized ones (Adam at lr 1e-2 gave ~1e-3 relative after 40
// DPO steps, on 1 rank against 2 as on any change of summation order).
constexpr double kRelTolerance = 1e-5;
constexpr double kAbsTolerance = 1e-6;

TEST(DataParallelRunTest, TwoGlooRanksMatchOneRankWithTheSameGlobalBatch) {
  const std::string dir = testing::make_temp_dir("dist-match");
  const std::string exp = write_experiment(dir, testing::toy_sft_dpo_yaml("dist"));
  Result one = run_cli("run " + exp + " --output " + dir + "/one");
  ASSERT_EQ(one.code, 0) << one.output;
  Result two = run_cli("run " + exp + " --nproc 2 --output " + dir + "/two");
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_NE(two.output.find("data parallel: 2 ranks over gloo"), std::string::npos) << two.output;
  EXPECT_NE(two.output.find(dir + "/two\n"), std::string::npos) << two.output;

  const auto a = testing::read_metrics(dir + "/one");
  const auto b = testing::read_metrics(dir + "/two");
  ASSERT_EQ(a.size(), 7u + 9u);
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  std::string worst_key;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["stage"], b[i]["stage"]);
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i].size(), b[i].size()) << a[i].dump() << "\n" << b[i].dump();
    // The share of pairs with a positive margin counts signs: where the margins are 0 but for
    // rounding (the DPO stage's first step, its policy still its reference), those signs are
    // rounding noise (0.1875 on 1 rank, 0.3125 on 2 on an AMD EPYC), so it is compared only where
    // the margins are larger than the tolerance.
    const bool margins_are_rounding = a[i].contains("rewards/margins") &&
                                      std::abs(a[i]["rewards/margins"].get<double>()) <= kAbsTolerance &&
                                      std::abs(b[i]["rewards/margins"].get<double>()) <= kAbsTolerance;
    for (auto it = a[i].begin(); it != a[i].end(); ++it) {
      if (!it.value().is_number_float()) continue;
      if (margins_are_rounding && it.key() == "rewards/accuracies") continue;
      ASSERT_TRUE(b[i].contains(it.key())) << it.key();
      const double x = it.value().get<double>();
      const double y = b[i][it.key()].get<double>();
      const double err = std::abs(x - y) / (kAbsTolerance + kRelTolerance * std::abs(x));
      if (err > worst) {
        worst = err;
        worst_key = a[i]["stage"].get<std::string>() + "/" + std::to_string(a[i]["step"].get<int>()) + "/" + it.key();
      }
      EXPECT_NEAR(y, x, kAbsTolerance + kRelTolerance * std::abs(x)) << "row " << i << " " << it.key();
    }
  }
  std::printf("2 ranks vs 1: worst |diff| / (%g + %g |x|) = %.3g at %s\n", kAbsTolerance, kRelTolerance, worst,
              worst_key.c_str());
  // The DPO stage really trained, so the comparison is not between two flat lines.
  EXPECT_GT(b.back()["probs/chosen"].get<double>(), b[7]["probs/chosen"].get<double>());
  // Rank 0 alone wrote the run directory: one metrics file, one log, the checkpoints, run.json.
  const std::string run_json = testing::read_file(dir + "/two/run.json");
  EXPECT_NE(run_json.find("\"completed\""), std::string::npos) << run_json;
  EXPECT_NE(run_json.find("\"world_size\": 2"), std::string::npos) << run_json;
  EXPECT_TRUE(boost::filesystem::exists(dir + "/two/checkpoints/dpo"));
  const std::string log = testing::read_file(dir + "/two/run.log");
  EXPECT_NE(log.find("data parallel: 2 ranks over gloo"), std::string::npos);
}

TEST(DataParallelRunTest, GlobalBatchThatDoesNotSplitIsAnError) {
  const std::string dir = testing::make_temp_dir("dist-split");
  const std::string exp = write_experiment(dir, testing::toy_sft_dpo_yaml("dist"));
  Result r = run_cli("run " + exp + " --nproc 2 --set stages.sft.batch_size=3 --output " + dir + "/run");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("batch_size 3 is the global batch and must split evenly over WORLD_SIZE 2"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--nproc 2: rank "), std::string::npos) << r.output;
}

TEST(DataParallelRunTest, LauncherNamesTheRankThatFailedAndStopsTheOthers) {
  const std::string dir = testing::make_temp_dir("dist-exit");
  const std::string exp = write_experiment(dir, testing::toy_sft_dpo_yaml("dist"));
  const auto start = Clock::now();
  Result r = run_cli("run " + exp + " --nproc 2 --output " + dir + "/run", "PREFENGINE_TEST_FAULT=1:10:exit");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("error: --nproc 2: rank 1 exited with status 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the other ranks were stopped"), std::string::npos) << r.output;
  EXPECT_LT(seconds_since(start), 40.0);
  const std::string run_json = testing::read_file(dir + "/run/run.json");
  EXPECT_EQ(run_json.find("\"completed\""), std::string::npos) << run_json;
}

TEST(DataParallelRunTest, LauncherPortInUseIsAClearError) {
  BusyPort busy;
  const std::string dir = testing::make_temp_dir("dist-port");
  const std::string exp = write_experiment(dir, testing::toy_sft_dpo_yaml("dist"));
  Result r = run_cli("run " + exp + " --nproc 2 --master-port " + std::to_string(busy.port()) + " --output " + dir + "/run");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("--master-port " + std::to_string(busy.port()) + ": the port is already in use"),
            std::string::npos)
      << r.output;
}

// Two ranks started by hand, torchrun-style, so that the survivor's own behaviour is what is
// tested (the --nproc launcher would stop it first).
struct Rank {
  pid_t pid = -1;
  std::string log;
};

Rank spawn_rank(int rank, int port, const std::vector<std::string>& args, const std::string& log,
                const std::string& fault) {
  Rank r;
  r.log = log;
  r.pid = ::fork();
  if (r.pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", "2", 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    ::setenv("PREFENGINE_TEST_FAULT", fault.c_str(), 1);
    std::vector<char*> argv{const_cast<char*>(PREFENGINE_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(PREFENGINE_CLI, argv.data());
    std::_Exit(127);
  }
  return r;
}

// The wait status, or -1 when it is still running after `seconds`.
int wait_for(pid_t pid, double seconds) {
  const auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

// Rank `faulty` dies (mode kill) or hangs (mode hang) after step 10; the other must exit with an
// error that names itself, the failed collective and the rank that fell behind, within the
// timeout plus a margin for start-up.
void check_survivor(const std::string& mode, int faulty, double timeout_s, double margin_s) {
  const int survivor = 1 - faulty;
  const std::string dir = testing::make_temp_dir("dist-" + mode);
  const std::string exp = write_experiment(dir, testing::toy_sft_dpo_yaml("dist"));
  const int port = find_free_port();
  const std::vector<std::string> args{"run", exp, "--output", dir + "/run",
                                      "--set", "distributed.timeout_s=" + std::to_string(timeout_s),
                                      // long enough that the survivor cannot finish before it notices
                                      "--set", "stages.sft.steps=100000"};
  const std::string fault = std::to_string(faulty) + ":10:" + mode;
  std::array<Rank, 2> ranks{spawn_rank(0, port, args, dir + "/rank0.log", fault),
                            spawn_rank(1, port, args, dir + "/rank1.log", fault)};
  // The faulty rank reaches its fault point.
  const auto start = Clock::now();
  while (testing::read_file(ranks[faulty].log).find("PREFENGINE_TEST_FAULT") == std::string::npos &&
         seconds_since(start) < 60) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto fault_time = Clock::now();
  const int status = wait_for(ranks[survivor].pid, timeout_s + margin_s);
  const double took = seconds_since(fault_time);
  ::kill(ranks[faulty].pid, SIGKILL);
  ::waitpid(ranks[faulty].pid, nullptr, 0);
  const std::string log = testing::read_file(ranks[survivor].log);
  if (status == -1) {
    ::kill(ranks[survivor].pid, SIGKILL);
    ::waitpid(ranks[survivor].pid, nullptr, 0);
    FAIL() << "rank " << survivor << " still running " << took << " s after rank " << faulty << "'s fault (" << mode
           << "); log:\n" << log;
  }
  const std::string who = std::to_string(survivor);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << "\n" << log;
  EXPECT_NE(log.find("error: [rank " + who + "] rank " + who + " of 2 (gloo): all_reduce failed"), std::string::npos)
      << log;
  // It names the rank that fell behind, found through the rendezvous store (hosted by rank 0).
  EXPECT_NE(log.find(faulty == 1 ? "rank 1 stopped at collective " : "the rendezvous store on rank 0"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("for longer than distributed.timeout_s"), std::string::npos) << log;
  if (survivor == 0) {
    const std::string run_json = testing::read_file(dir + "/run/run.json");
    EXPECT_NE(run_json.find("\"failed\""), std::string::npos) << run_json;
  }
  std::printf("rank %d %s at step 10: rank %d exited with an error after %.2f s (timeout %g s)\n", faulty,
              mode.c_str(), survivor, took, timeout_s);
}

TEST(DataParallelFaultTest, KilledRankEndsTheSurvivorWithAnError) {
  check_survivor("kill", /*faulty=*/1, /*timeout_s=*/5, /*margin_s=*/10);
}

TEST(DataParallelFaultTest, KilledRankZeroEndsTheSurvivorWithAnError) {
  check_survivor("kill", /*faulty=*/0, /*timeout_s=*/5, /*margin_s=*/10);
}

TEST(DataParallelFaultTest, HungRankEndsTheSurvivorWithinTheTimeout) {
  check_survivor("hang", /*faulty=*/1, /*timeout_s=*/3, /*margin_s=*/10);
}

}  // namespace
}  // namespace prefengine
