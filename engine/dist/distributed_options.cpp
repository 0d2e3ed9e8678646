#include "engine/dist/distributed_options.h"

#include <stdexcept>

namespace prefengine {

void DistributedOptions::validate() const {
  if (backend != "auto" && backend != "gloo" && backend != "nccl") {
    throw std::invalid_argument("distributed.backend: expected auto, gloo or nccl, got '" + backend + "'");
  }
  if (!(timeout_s > 0)) {
    throw std::invalid_argument("distributed.timeout_s: expected > 0, got " + std::to_string(timeout_s));
  }
  if (!(bucket_mb > 0)) {
    throw std::invalid_argument("distributed.bucket_mb: expected > 0, got " + std::to_string(bucket_mb));
  }
}

}  // namespace prefengine
