#include "engine/metrics/tensorboard_writer.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <boost/filesystem.hpp>

#include "engine/io/durable_file.h"

namespace prefengine {
namespace {

// Protocol buffer wire format: a field's key is (number << 3) | wire type; 0 varint, 1 fixed64,
// 2 length-delimited, 5 fixed32. Integers are little endian.
void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_fixed32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void put_fixed64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) { put_varint(out, (field << 3) | wire_type); }

void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}

void put_double(std::string& out, uint32_t field, double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  put_key(out, field, 1);
  put_fixed64(out, bits);
}

void put_float(std::string& out, uint32_t field, float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  put_key(out, field, 5);
  put_fixed32(out, bits);
}

std::string host_name() {
  char buffer[256] = {};
  if (gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  std::string name(buffer);
  for (char& c : name) {
    if (c == '/' || c == '\\') c = '_';
  }
  return name;
}

}  // namespace

uint32_t tensorboard_masked_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8U; }

std::string tfrecord_frame(const std::string& data) {
  std::string length;
  put_fixed64(length, data.size());
  std::string out = length;
  put_fixed32(out, tensorboard_masked_crc(crc32c(length)));
  out += data;
  put_fixed32(out, tensorboard_masked_crc(crc32c(data)));
  return out;
}

std::string encode_file_version_event(double wall_time, const std::string& version) {
  std::string event;
  put_double(event, 1, wall_time);
  put_bytes(event, 3, version);
  return event;
}

std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string entry;
    put_bytes(entry, 1, tag);
    put_float(entry, 2, static_cast<float>(value));
    put_bytes(summary, 1, entry);
  }
  std::string event;
  put_double(event, 1, wall_time);
  put_key(event, 2, 0);
  put_varint(event, static_cast<uint64_t>(step));  // int64: negative values as 10-byte two's complement
  put_bytes(event, 5, summary);
  return event;
}

double tensorboard_wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TensorBoardWriter::TensorBoardWriter(const std::string& directory) {
  static std::atomic<int> counter{0};
  boost::system::error_code error;
  boost::filesystem::create_directories(directory, error);
  if (error) throw std::runtime_error(directory + ": cannot create the TensorBoard folder: " + error.message());
  const double now = tensorboard_wall_time();
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%010lld", static_cast<long long>(now));
  path_ = directory + "/events.out.tfevents." + stamp + "." + host_name() + "." + std::to_string(getpid()) + "." +
          std::to_string(counter++);
  write_file_synced(path_, tfrecord_frame(encode_file_version_event(now)));
  sync_path(directory);
}

void TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars,
                                    double wall_time) {
  append_file_checked(path_, tfrecord_frame(encode_scalars_event(wall_time, step, scalars)));
}

void TensorBoardWriter::sync() const { sync_path(path_); }

}  // namespace prefengine
