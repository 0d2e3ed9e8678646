#pragma once
// TensorBoard event files written by hand (no TensorFlow, no protobuf library):
//
//   file     events.out.tfevents.<unix seconds, 10 digits>.<host>.<pid>.<n>, a sequence of records
//   record   uint64 length (little endian), uint32 masked CRC-32C of those 8 bytes, `length` bytes of
//            data, uint32 masked CRC-32C of the data (TFRecord framing);
//            masked(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8
//   data     a serialized tensorflow.Event: wall_time (field 1, double), step (2, int64),
//            file_version (3, string) or summary (5, Summary); Summary: repeated value (1),
//            Summary.Value: tag (1, string), simple_value (2, float)
//
// The first record of a file is {wall_time, file_version: "brain.Event:2"}; every metrics row is one
// event with all its scalars. `tensorboard --logdir RUN_DIR/tensorboard` shows one run per stage.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace prefengine {

// TFRecord's masked form of a CRC-32C (crc32c in engine/io/durable_file.h).
uint32_t tensorboard_masked_crc(uint32_t crc);

// One TFRecord: the framing around `data`.
std::string tfrecord_frame(const std::string& data);

// Serialized tensorflow.Event messages.
std::string encode_file_version_event(double wall_time, const std::string& version = "brain.Event:2");
std::string encode_scalars_event(double wall_time, int64_t step,
                                 const std::vector<std::pair<std::string, double>>& scalars);

// Seconds since the epoch, as TensorBoard's wall_time.
double tensorboard_wall_time();

class TensorBoardWriter {
 public:
  // Creates `directory` (and its parents) and a new events file in it, starting with the
  // file_version record. Errors: std::runtime_error naming the file.
  explicit TensorBoardWriter(const std::string& directory);

  // Appends one event with the scalars (each as a float simple_value, NaN and Inf kept) at `step`.
  // The record is written to the file at once (no buffering in the process); sync() fsyncs it.
  void add_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars,
                   double wall_time = tensorboard_wall_time());
  void sync() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace prefengine
