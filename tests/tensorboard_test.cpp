// TensorBoard event files (report_to: [tensorboard]): read back by a reader written here, with its
// own CRC-32C and its own protobuf decoding, never the engine's code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>

#include "engine/config/experiment_config.h"
#include "engine/io/durable_file.h"
#include "engine/metrics/tensorboard_writer.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

// ---------------------------------------------------------------------------------------------
// The independent reader.

// CRC-32C bit by bit: reflected Castagnoli polynomial 0x82F63B78, initial and final XOR ~0.
uint32_t reference_crc32c(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : bytes) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

uint32_t reference_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t little_endian(const std::string& bytes, size_t at, int size) {
  uint64_t value = 0;
  for (int i = size - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes.at(at + i));
  return value;
}

struct Scalar {
  std::string tag;
  float value = 0;
};

struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  bool has_summary = false;
  std::vector<Scalar> scalars;
};

// A protobuf message, field by field: (number, wire type, varint or fixed value, bytes).
struct Field {
  uint32_t number;
  uint32_t wire;
  uint64_t integer;
  std::string bytes;
};

std::vector<Field> decode_message(const std::string& m) {
  std::vector<Field> fields;
  size_t pos = 0;
  auto varint = [&]() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= m.size()) throw std::runtime_error("truncated varint");
      const auto byte = static_cast<unsigned char>(m[pos++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    throw std::runtime_error("varint longer than 10 bytes");
  };
  while (pos < m.size()) {
    const uint64_t key = varint();
    Field f{static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7), 0, {}};
    if (f.wire == 0) {
      f.integer = varint();
    } else if (f.wire == 1 || f.wire == 5) {
      const int size = f.wire == 1 ? 8 : 4;
      if (pos + size > m.size()) throw std::runtime_error("truncated fixed field");
      f.integer = little_endian(m, pos, size);
      pos += size;
    } else if (f.wire == 2) {
      const uint64_t length = varint();
      if (pos + length > m.size()) throw std::runtime_error("truncated length-delimited field");
      f.bytes = m.substr(pos, length);
      pos += length;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
    }
    fields.push_back(f);
  }
  return fields;
}

Event decode_event(const std::string& data) {
  Event e;
  for (const Field& f : decode_message(data)) {
    if (f.number == 1 && f.wire == 1) std::memcpy(&e.wall_time, &f.integer, 8);
    else if (f.number == 2 && f.wire == 0) e.step = static_cast<int64_t>(f.integer);
    else if (f.number == 3 && f.wire == 2) e.file_version = f.bytes;
    else if (f.number == 5 && f.wire == 2) {
      e.has_summary = true;
      for (const Field& v : decode_message(f.bytes)) {
        if (v.number != 1 || v.wire != 2) throw std::runtime_error("Summary: unexpected field");
        Scalar s;
        bool has_value = false;
        for (const Field& x : decode_message(v.bytes)) {
          if (x.number == 1 && x.wire == 2) s.tag = x.bytes;
          else if (x.number == 2 && x.wire == 5) {
            const auto bits = static_cast<uint32_t>(x.integer);
            std::memcpy(&s.value, &bits, 4);
            has_value = true;
          } else throw std::runtime_error("Summary.Value: unexpected field " + std::to_string(x.number));
        }
        if (!has_value) throw std::runtime_error("Summary.Value '" + s.tag + "' without simple_value");
        e.scalars.push_back(s);
      }
    } else {
      throw std::runtime_error("Event: unexpected field " + std::to_string(f.number));
    }
  }
  return e;
}

// Every record of a file, each CRC checked; throws naming the record on any mismatch.
std::vector<Event> read_events(const std::string& path) {
  const std::string bytes = testing::read_file(path);
  std::vector<Event> events;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const std::string where = path + ": record " + std::to_string(events.size());
    if (pos + 12 > bytes.size()) throw std::runtime_error(where + ": truncated header");
    const uint64_t length = little_endian(bytes, pos, 8);
    if (reference_mask(reference_crc32c(bytes.substr(pos, 8))) != little_endian(bytes, pos + 8, 4)) {
      throw std::runtime_error(where + ": length CRC mismatch");
    }
    if (pos + 12 + length + 4 > bytes.size()) throw std::runtime_error(where + ": truncated data");
    const std::string data = bytes.substr(pos + 12, length);
    if (reference_mask(reference_crc32c(data)) != little_endian(bytes, pos + 12 + length, 4)) {
      throw std::runtime_error(where + ": data CRC mismatch");
    }
    events.push_back(decode_event(data));
    pos += 12 + length + 4;
  }
  return events;
}

std::vector<std::string> event_files(const std::string& dir) {
  std::vector<std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(entry.path().string());
  }
  return files;
}

// metrics.jsonl rows of a stage with their keys in file order (testing::read_metrics sorts them).
std::vector<nlohmann::ordered_json> ordered_rows(const std::string& run, const std::string& stage) {
  std::vector<nlohmann::ordered_json> rows;
  std::istringstream in(testing::read_file(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto row = nlohmann::ordered_json::parse(line);
    if (row["stage"] == stage) rows.push_back(row);
  }
  return rows;
}

// The stage's single events file equals its metrics.jsonl rows: one event per row at the row's
// step, the row's metrics in order as tags, each value the row's value as a float.
void expect_events_match_metrics(const std::string& run, const std::string& stage) {
  SCOPED_TRACE("stage " + stage);
  const auto files = event_files(run + "/tensorboard/" + stage);
  ASSERT_EQ(files.size(), 1u);
  const std::vector<Event> events = read_events(files[0]);
  const auto rows = ordered_rows(run, stage);
  ASSERT_FALSE(rows.empty());
  ASSERT_EQ(events.size(), rows.size() + 1);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_FALSE(events[0].has_summary);
  for (size_t i = 0; i < rows.size(); ++i) {
    const Event& e = events[i + 1];
    const auto& row = rows[i];
    EXPECT_EQ(e.step, row["step"].get<int64_t>());
    EXPECT_GT(e.wall_time, 1.6e9);
    std::vector<std::string> keys;
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (it.key() != "stage" && it.key() != "step" && it.key() != "global_step") keys.push_back(it.key());
    }
    ASSERT_EQ(e.scalars.size(), keys.size()) << row.dump();
    for (size_t k = 0; k < keys.size(); ++k) {
      EXPECT_EQ(e.scalars[k].tag, keys[k]);
      const auto& value = row[keys[k]];
      if (value.is_null()) {
        EXPECT_TRUE(std::isnan(e.scalars[k].value)) << keys[k];
      } else {
        EXPECT_EQ(e.scalars[k].value, static_cast<float>(value.get<double>())) << keys[k] << " at step " << e.step;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

TEST(TensorBoardReaderTest, Crc32cOfTheCheckStringIsThePublishedValue) {
  EXPECT_EQ(reference_crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

TEST(TensorBoardWriterTest, AnEventIsTheProtobufBytesOfTheSpec) {
  // Event{wall_time: 0 (field 1, fixed64), step: 300 (field 2, varint AC 02), summary (field 5):
  // Summary{value (1): Value{tag (1): "a", simple_value (2, fixed32): 1.0f = 0x3F800000}}}.
  const std::string value = std::string("\x0A\x01" "a" "\x15\x00\x00\x80\x3F", 8);
  const std::string summary = std::string("\x0A\x08", 2) + value;
  const std::string expected = std::string("\x09\0\0\0\0\0\0\0\0", 9) + std::string("\x10\xAC\x02", 3) +
                               std::string("\x2A\x0A", 2) + summary;
  EXPECT_EQ(encode_scalars_event(0.0, 300, {{"a", 1.0}}), expected);
  EXPECT_EQ(encode_file_version_event(0.0), std::string("\x09\0\0\0\0\0\0\0\0", 9) + "\x1A\x0D" "brain.Event:2");
  // TFRecord framing: length (little endian), masked CRC of it, data, masked CRC of the data.
  const std::string framed = tfrecord_frame(expected);
  ASSERT_EQ(framed.size(), 8 + 4 + expected.size() + 4);
  EXPECT_EQ(little_endian(framed, 0, 8), expected.size());
  EXPECT_EQ(little_endian(framed, 8, 4), reference_mask(reference_crc32c(framed.substr(0, 8))));
  EXPECT_EQ(framed.substr(12, expected.size()), expected);
  EXPECT_EQ(little_endian(framed, 12 + expected.size(), 4), reference_mask(reference_crc32c(expected)));
}

TEST(TensorBoardWriterTest, HandMadeValuesReadBack) {
  const std::string dir = testing::make_temp_dir("tb-writer") + "/logs/stage";
  std::string path;
  {
    TensorBoardWriter writer(dir);
    path = writer.path();
    writer.add_scalars(1, {{"loss", 0.6931471805599453}, {"logps/chosen", -12.25}}, 1000.5);
    // Visible at once (flushed at every row), before the writer is closed.
    const std::vector<Event> so_far = read_events(path);
    ASSERT_EQ(so_far.size(), 2u);
    writer.add_scalars(300, {{"x", 1e-3}, {"not a number", std::nan("")}, {"big", 3e38}, {"minus inf", -INFINITY}},
                       1001.25);
    writer.add_scalars(-2, {}, 7);
  }
  EXPECT_EQ(fs::path(path).parent_path().string(), dir);
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u) << path;
  const std::vector<Event> events = read_events(path);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_GT(events[0].wall_time, 1.6e9);
  EXPECT_EQ(events[1].wall_time, 1000.5);
  EXPECT_EQ(events[1].step, 1);
  ASSERT_EQ(events[1].scalars.size(), 2u);
  EXPECT_EQ(events[1].scalars[0].tag, "loss");
  EXPECT_EQ(events[1].scalars[0].value, 0.6931471805599453f);
  EXPECT_EQ(events[1].scalars[1].tag, "logps/chosen");
  EXPECT_EQ(events[1].scalars[1].value, -12.25f);
  EXPECT_EQ(events[2].wall_time, 1001.25);
  EXPECT_EQ(events[2].step, 300);
  ASSERT_EQ(events[2].scalars.size(), 4u);
  EXPECT_EQ(events[2].scalars[0].value, 1e-3f);
  EXPECT_EQ(events[2].scalars[1].tag, "not a number");
  EXPECT_TRUE(std::isnan(events[2].scalars[1].value));
  EXPECT_EQ(events[2].scalars[2].value, 3e38f);
  EXPECT_EQ(events[2].scalars[3].value, -INFINITY);
  EXPECT_EQ(events[3].step, -2);  // int64 as a 10-byte two's complement varint
  EXPECT_TRUE(events[3].has_summary);
  EXPECT_TRUE(events[3].scalars.empty());

  // The reader is no rubber stamp: one flipped bit of the data fails its CRC.
  std::string bytes = testing::read_file(path);
  bytes[bytes.size() - 6] ^= 0x01;
  testing::write_file(path, bytes);
  EXPECT_THROW(read_events(path), std::runtime_error);
}

// A toy experiment: SFT, then DPO with held-out evaluation, then a stage with report_to: none.
std::string toy_yaml(const std::string& report_to, const std::string& stage_report_to) {
  return "name: tb\nseed: 0\nthreads: 1\n" + report_to +
         "model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 16, layers: 2}\n"
         "stages:\n"
         "  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2},\n"
         "     batch_size: 4, steps: 12, log_every: 1, checkpoint_every: 4}\n"
         "  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},\n"
         "     batch_size: 8, steps: 10, log_every: 3, eval: {path: configs/toy/data/pairs.jsonl, every: 5}" +
         stage_report_to + "}\n"
         "  - {name: quiet, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, batch_size: 4, steps: 2,\n"
         "     log_every: 1, report_to: none}\n";
}

TEST(TensorBoardRunTest, EveryStageWritesItsMetricsRowsAsScalars) {
  const std::string dir = testing::make_temp_dir("tb-run");
  const std::string exp = testing::write_file(dir + "/exp.yaml", toy_yaml("report_to: [tensorboard]\n", ""));
  const auto r = testing::run_cli("run " + exp + " --output " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  expect_events_match_metrics(dir + "/run", "sft");
  expect_events_match_metrics(dir + "/run", "dpo");
  // The dpo stage's rows carry its own metrics and the evaluation's, all of them as tags.
  const auto dpo = testing::read_metrics(dir + "/run", "dpo");
  EXPECT_TRUE(dpo.back().contains("eval/loss")) << dpo.back().dump();
  EXPECT_TRUE(dpo.back().contains("logps/chosen")) << dpo.back().dump();
  // report_to: none on the stage: no folder, though its rows are in metrics.jsonl.
  EXPECT_FALSE(fs::exists(dir + "/run/tensorboard/quiet"));
  EXPECT_EQ(testing::read_metrics(dir + "/run", "quiet").size(), 2u);
}

TEST(TensorBoardRunTest, AResumedRunRewritesTheStageFileWithoutDuplicatedSteps) {
  const std::string dir = testing::make_temp_dir("tb-resume");
  const std::string exp = testing::write_file(dir + "/exp.yaml", toy_yaml("report_to: [tensorboard]\n", ""));
  const auto whole = testing::run_cli("run " + exp + " --output " + dir + "/whole");
  ASSERT_EQ(whole.code, 0) << whole.output;
  // Killed at global step 7 of the sft stage: rows 1..6 are written, the checkpoint is at step 4.
  const auto killed = testing::run_cli("run " + exp + " --output " + dir + "/run", "PREFENGINE_TEST_FAULT=0:7:kill");
  ASSERT_NE(killed.code, 0) << killed.output;
  {
    const auto files = event_files(dir + "/run/tensorboard/sft");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(read_events(files[0]).size(), 1u + 6u);  // rows past the checkpoint are on disk
  }
  const auto resumed = testing::run_cli("run --resume " + dir + "/run");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  expect_events_match_metrics(dir + "/run", "sft");
  expect_events_match_metrics(dir + "/run", "dpo");
  // And the same scalars as the uninterrupted run (the resumed metrics are bit-identical).
  for (const std::string stage : {"sft", "dpo"}) {
    const auto a = read_events(event_files(dir + "/whole/tensorboard/" + stage).at(0));
    const auto b = read_events(event_files(dir + "/run/tensorboard/" + stage).at(0));
    ASSERT_EQ(a.size(), b.size()) << stage;
    for (size_t i = 1; i < a.size(); ++i) {
      EXPECT_EQ(a[i].step, b[i].step);
      ASSERT_EQ(a[i].scalars.size(), b[i].scalars.size());
      for (size_t k = 0; k < a[i].scalars.size(); ++k) {
        EXPECT_EQ(a[i].scalars[k].tag, b[i].scalars[k].tag);
        if (std::isnan(a[i].scalars[k].value)) {
          EXPECT_TRUE(std::isnan(b[i].scalars[k].value));
        } else {
          EXPECT_EQ(a[i].scalars[k].value, b[i].scalars[k].value) << stage << " " << a[i].scalars[k].tag;
        }
      }
    }
  }
}

std::string config_error(const std::string& yaml) {
  try {
    parse_experiment(yaml, "exp.yaml");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no error";
}

TEST(TensorBoardConfigTest, ReportToValuesAndErrors) {
  std::string e = config_error(toy_yaml("report_to: [tensorboard, wandb]\n", ""));
  EXPECT_EQ(e.rfind("exp.yaml:4:", 0), 0u) << e;
  EXPECT_NE(e.find("report_to: expected a list of tensorboard"), std::string::npos) << e;
  EXPECT_NE(e.find("'wandb'"), std::string::npos) << e;
  e = config_error(toy_yaml("", ", report_to: [all]"));
  EXPECT_NE(e.find("stages[1].report_to: expected a list of tensorboard"), std::string::npos) << e;
  e = config_error(toy_yaml("report_to: [tensorboard, none]\n", ""));
  EXPECT_NE(e.find("tensorboard or none, not both"), std::string::npos) << e;
  // On for every stage but the one with report_to: none; [] and none are off; a stage overrides.
  auto on = [](const ExperimentConfig& c) {
    std::string s;
    for (const auto& stage : c.stages) s += stage.tensorboard ? "1" : "0";
    return s;
  };
  EXPECT_EQ(on(parse_experiment(toy_yaml("report_to: [tensorboard]\n", ""), "exp.yaml")), "110");
  EXPECT_EQ(on(parse_experiment(toy_yaml("report_to: tensorboard\n", ""), "exp.yaml")), "110");
  EXPECT_EQ(on(parse_experiment(toy_yaml("report_to: []\n", ""), "exp.yaml")), "000");
  EXPECT_EQ(on(parse_experiment(toy_yaml("report_to: none\n", ", report_to: [tensorboard]"), "exp.yaml")), "010");
  EXPECT_EQ(on(parse_experiment(toy_yaml("", ""), "exp.yaml")), "000");
}

}  // namespace
}  // namespace prefengine
