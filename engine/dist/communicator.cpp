#include "engine/dist/communicator.h"

#include <cstdlib>
#include <stdexcept>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace prefengine {
namespace {

// The first of `names` that is set, or nullptr.
const char* first_env(std::initializer_list<const char*> names, const char** which) {
  for (const char* name : names) {
    if (const char* value = std::getenv(name); value && *value) {
      *which = name;
      return value;
    }
  }
  return nullptr;
}

int env_int(std::initializer_list<const char*> names, int fallback, int min, int max) {
  const char* which = nullptr;
  const char* text = first_env(names, &which);
  if (!text) return fallback;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < min || value > max) {
    throw std::invalid_argument(std::string("environment variable ") + which + ": expected an integer in [" +
                                std::to_string(min) + ", " + std::to_string(max) + "], got '" + text + "'");
  }
  return static_cast<int>(value);
}

class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "single"; }
  void all_reduce_sum(std::vector<at::Tensor>&) override {}
  at::Tensor all_gather(const at::Tensor& tensor) override { return tensor.clone(); }
  void broadcast(at::Tensor&, int) override {}
  void barrier() override {}
};

}  // namespace

Communicator::~Communicator() = default;

DistributedEnv DistributedEnv::from_environment() {
  DistributedEnv env;
  env.world_size = env_int({"WORLD_SIZE", "SLURM_NTASKS"}, 1, 1, 1 << 20);
  env.rank = env_int({"RANK", "SLURM_PROCID"}, 0, 0, env.world_size - 1);
  env.local_rank = env_int({"LOCAL_RANK", "SLURM_LOCALID"}, 0, 0, 1 << 20);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) env.master_addr = addr;
  env.master_port = env_int({"MASTER_PORT"}, env.master_port, 1, 65535);
  return env;
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

#ifndef PREFENGINE_WITH_NCCL
bool nccl_compiled_in() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(const DistributedEnv&, std::chrono::milliseconds) {
  throw std::runtime_error(
      "distributed.backend nccl: this prefengine was built without NCCL (CMake found no nccl.h and "
      "libnccl; set CUDAToolkit_ROOT or NCCL_ROOT and rebuild)");
}
#endif

std::unique_ptr<Communicator> create_communicator(const DistributedOptions& options, const DistributedEnv& env) {
  options.validate();
  if (env.world_size == 1 && options.backend != "nccl") return make_single_process_communicator();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0));
  if (options.backend == "nccl") return make_nccl_communicator(env, timeout);
  return make_gloo_communicator(env, timeout);
}

std::string describe_exception(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return c10_error->what_without_backtrace();
  return e.what();
}

}  // namespace prefengine
