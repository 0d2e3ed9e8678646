#pragma once
// The experiment's `distributed:` block: how ranks talk, not how many there are (the launcher's
// RANK / WORLD_SIZE say that).
//
//   distributed: {backend: auto, timeout_s: 300, bucket_mb: 25}
#include <cstdint>
#include <string>

namespace prefengine {

struct DistributedOptions {
  std::string backend = "auto";  // auto (gloo when WORLD_SIZE > 1), gloo (CPU tensors) or nccl (GPU)
  double timeout_s = 300;        // a collective or rendezvous that takes longer is an error, in seconds
  double bucket_mb = 25;         // gradient all-reduce bucket size in MiB; the buffer is cut into chunks

  void validate() const;
};

}  // namespace prefengine
