#include "safetensors.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace prefengine::plugins::model {
namespace {

struct DtypeName {
  const char* name;
  at::ScalarType type;
};

constexpr DtypeName kDtypes[] = {
    {"F32", at::kFloat}, {"F16", at::kHalf},   {"BF16", at::kBFloat16}, {"F64", at::kDouble},
    {"I64", at::kLong},  {"I32", at::kInt},    {"I16", at::kShort},     {"I8", at::kChar},
    {"U8", at::kByte},   {"BOOL", at::kBool},
};

at::ScalarType dtype_from_name(const std::string& name, const std::string& where) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.type;
  }
  throw std::invalid_argument(where + ": unsupported safetensors dtype '" + name +
                              "' (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");
}

const char* name_from_dtype(at::ScalarType type, const std::string& where) {
  for (const auto& d : kDtypes) {
    if (type == d.type) return d.name;
  }
  throw std::invalid_argument(where + ": dtype " + std::string(c10::toString(type)) +
                              " cannot be stored in safetensors");
}

// Reads the header; leaves `in` at the first data byte and sets `data_size` to the bytes after it.
nlohmann::json read_header(std::ifstream& in, const std::string& path, uint64_t* data_size) {
  if (!in) throw std::runtime_error(path + ": cannot open safetensors file");
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0, std::ios::beg);
  unsigned char length_bytes[8];
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(length_bytes), 8)) {
    throw std::invalid_argument(path + ": not a safetensors file (shorter than 8 bytes)");
  }
  uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
  if (header_length > file_size - 8) {
    throw std::invalid_argument(path + ": safetensors header length " +
                                std::to_string(header_length) + " exceeds the file size " +
                                std::to_string(file_size));
  }
  std::string text(header_length, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(header_length))) {
    throw std::runtime_error(path + ": cannot read the safetensors header");
  }
  *data_size = file_size - 8 - header_length;
  try {
    nlohmann::json header = nlohmann::json::parse(text);
    if (!header.is_object()) throw std::invalid_argument("not an object");
    return header;
  } catch (const std::exception& e) {
    throw std::invalid_argument(path + ": the safetensors header is not a JSON object (" +
                                std::string(e.what()) + ")");
  }
}

struct ParsedEntry {
  at::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

ParsedEntry parse_entry(const std::string& path, const std::string& name,
                        const nlohmann::json& value, uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
      !value.contains("data_offsets")) {
    throw std::invalid_argument(where + ": expected {dtype, shape, data_offsets}");
  }
  ParsedEntry entry;
  entry.type = dtype_from_name(value["dtype"].get<std::string>(), where);
  uint64_t numel = 1;
  for (const auto& s : value["shape"]) {
    const int64_t v = s.get<int64_t>();
    if (v < 0) throw std::invalid_argument(where + ": negative dimension");
    entry.shape.push_back(v);
    numel *= static_cast<uint64_t>(v);
  }
  const auto& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    throw std::invalid_argument(where + ": data_offsets must be [begin, end]");
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  const uint64_t expected = numel * c10::elementSize(entry.type);
  if (entry.end < entry.begin || entry.end - entry.begin != expected || entry.end > data_size) {
    throw std::invalid_argument(where + ": data_offsets [" + std::to_string(entry.begin) + ", " +
                                std::to_string(entry.end) + "] do not hold " +
                                std::to_string(expected) + " bytes inside the " +
                                std::to_string(data_size) + " data bytes");
  }
  return entry;
}

}  // namespace

std::map<std::string, SafetensorsEntry> read_safetensors_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t data_size = 0;
  const nlohmann::json header = read_header(in, path, &data_size);
  std::map<std::string, SafetensorsEntry> out;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    const ParsedEntry parsed = parse_entry(path, name, value, data_size);
    out[name] = SafetensorsEntry{value["dtype"].get<std::string>(), parsed.shape};
  }
  return out;
}

std::map<std::string, at::Tensor> load_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t data_size = 0;
  const nlohmann::json header = read_header(in, path, &data_size);
  const std::streamoff data_start = in.tellg();
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    const ParsedEntry entry = parse_entry(path, name, value, data_size);
    at::Tensor tensor = at::empty(entry.shape, at::TensorOptions().dtype(entry.type));
    const uint64_t bytes = entry.end - entry.begin;
    in.seekg(data_start + static_cast<std::streamoff>(entry.begin));
    if (bytes > 0 &&
        !in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(bytes))) {
      throw std::runtime_error(path + ": cannot read the data of tensor '" + name + "'");
    }
    out.emplace(name, std::move(tensor));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = path + ": tensor '" + name + "'";
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {{"dtype", name_from_dtype(cpu.scalar_type(), where)},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(cpu));
  }
  std::string text = header.dump();
  // Pad the header with spaces so that the data starts 8-byte aligned, as the reference writer does.
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  unsigned char length_bytes[8];
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>((length >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(length_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : data) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(static_cast<uint64_t>(t.numel()) * t.element_size()));
  }
  if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace prefengine::plugins::model
