#pragma once
// A small reader and writer for the safetensors format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then
// the raw little-endian tensor bytes. No dependency on the engine.
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace prefengine::plugins::model {

// Reads every tensor of `path` (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL) in its stored
// dtype, as contiguous CPU tensors that own their memory. Throws std::runtime_error when the file
// cannot be read and std::invalid_argument naming the file and tensor when its content is wrong.
std::map<std::string, at::Tensor> load_safetensors(const std::string& path);

// The tensor names of `path` with their dtype names and shapes, without reading the data.
struct SafetensorsEntry {
  std::string dtype;           // "F32", "BF16", ...
  std::vector<int64_t> shape;  // the tensor's sizes
};
std::map<std::string, SafetensorsEntry> read_safetensors_header(const std::string& path);

// Writes `tensors` (any supported dtype, any device; stored contiguous on CPU) with an optional
// string-to-string "__metadata__" block. Throws std::runtime_error when the file cannot be written.
void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace prefengine::plugins::model
