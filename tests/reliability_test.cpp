// Nothing lost, nothing crashes: durable writes, checkpoint checksums, the resume fallback, and
// runs whose k-th write/fsync/rename fails (the LD_PRELOAD shim tests/faults/fail_io.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include <boost/filesystem.hpp>

#include "engine/io/durable_file.h"
#include "engine/train/checkpoint.h"
#include "engine/train/resume.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;
using testing::read_metrics;

struct CliRun {
  bool signaled = false;
  int code = -1;
  std::string err;  // stderr
  std::vector<std::string> error_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("error:", 0) == 0) lines.push_back(line);
    }
    return lines;
  }
};

// `prefengine ARGS` with `env ENV` in front; stdout dropped, stderr kept.
CliRun cli(const std::string& args, const std::string& env = "") {
  const std::string err_file = testing::make_temp_dir("stderr") + "/stderr";
  const std::string command = "exec env " + env + " " + PREFENGINE_CLI + " " + args + " >/dev/null 2>" + err_file;
  const int status = std::system(command.c_str());
  CliRun r;
  r.signaled = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) > 128);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = testing::read_file(err_file);
  return r;
}

// sft 20 steps then dpo 30, a checkpoint every 10 steps, a metrics row every 5.
std::string config_file() {
  static const std::string path = [] {
    const std::string dir = testing::make_temp_dir("reliable-config");
    return testing::write_file(
        dir + "/reliable.yaml",
        "name: reliable\nseed: 1\nthreads: 1\nmodel: {plugin: toy_mlp, hidden: 16}\nstages:\n"
        "  - {name: sft, kind: sft, data: {path: " + testing::source_path("configs/toy/data/sft_scenario1.jsonl") +
            "}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 20, log_every: 5, checkpoint_every: 10}\n"
        "  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: " +
            testing::source_path("configs/toy/data/pairs.jsonl") +
            "}, optimizer: {lr: 1.0e-3}, batch_size: 6, steps: 30, log_every: 5, checkpoint_every: 10}\n");
  }();
  return path;
}

std::string new_run_dir(const std::string& tag) { return testing::make_temp_dir(tag) + "/run"; }

CliRun start(const std::string& dir, const std::string& env = "") {
  return cli("run " + config_file() + " --output " + dir + " --log-level warn", env);
}

// The uninterrupted run, once.
const std::string& reference_run() {
  static const std::string dir = [] {
    const std::string d = new_run_dir("reliable-whole");
    const CliRun r = start(d);
    EXPECT_EQ(r.code, 0) << r.err;
    return d;
  }();
  return dir;
}

void expect_same_metrics(const std::string& a, const std::string& b) {
  const auto x = read_metrics(a), y = read_metrics(b);
  ASSERT_EQ(x.size(), y.size()) << a << " vs " << b;
  ASSERT_EQ(x.size(), 5u + 7u);  // sft: steps 1, 5, ..., 20; dpo: 1, 5, ..., 30
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x[i].size(), y[i].size()) << x[i].dump() << "\n" << y[i].dump();
    for (auto it = x[i].begin(); it != x[i].end(); ++it) {
      ASSERT_TRUE(y[i].contains(it.key())) << it.key();
      if (it.value().is_number_float()) {
        const double u = it.value().get<double>(), v = y[i][it.key()].get<double>();
        EXPECT_NEAR(u, v, 1e-9 * std::max(1.0, std::abs(u))) << "row " << i << " " << it.key();
      } else {
        EXPECT_EQ(it.value(), y[i][it.key()]) << "row " << i << " " << it.key();
      }
    }
  }
}

nlohmann::json run_status(const std::string& dir) {
  const auto j = nlohmann::json::parse(testing::read_file(dir + "/run.json"), nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << dir << "/run.json: " << testing::read_file(dir + "/run.json");
  return j;
}

void flip_byte(const std::string& path) {
  std::string bytes = testing::read_file(path);
  ASSERT_GT(bytes.size(), 10u) << path;
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x20);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// --- durable files and checksums --------------------------------------------------------------

TEST(DurableFileTest, Crc32cMatchesTheStandardCheckValue) {
  // CRC-32C's published check value (RFC 3720, B.4): "123456789" -> 0xE3069283.
  EXPECT_EQ(crc32c_hex("123456789"), "e3069283");
  EXPECT_EQ(crc32c_hex(""), "00000000");
}

TEST(DurableFileTest, ReplacesTheFileAndLeavesNoTemporary) {
  const std::string dir = testing::make_temp_dir("durable");
  write_file_durably(dir + "/a.json", "old\n");
  write_file_durably(dir + "/a.json", "new\n");
  EXPECT_EQ(testing::read_file(dir + "/a.json"), "new\n");
  EXPECT_FALSE(fs::exists(dir + "/a.json.tmp"));
  try {
    write_file_durably(dir + "/missing/a.json", "x");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/missing/a.json.tmp: cannot write: No such file or directory");
  }
}

TEST(DurableFileTest, AppendsCreatingTheFileAndNamesAFailure) {
  const std::string dir = testing::make_temp_dir("durable-append");
  append_file_checked(dir + "/a.jsonl", "");  // creates the file, empty
  EXPECT_TRUE(fs::exists(dir + "/a.jsonl"));
  append_file_checked(dir + "/a.jsonl", "one\n");
  append_file_checked(dir + "/a.jsonl", "two\n");
  EXPECT_EQ(testing::read_file(dir + "/a.jsonl"), "one\ntwo\n");
  try {
    append_file_checked(dir + "/missing/a.jsonl", "x");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/missing/a.jsonl: cannot write: No such file or directory");
  }
}

// --- a write that fails mid-run ---------------------------------------------------------------

struct Fault {
  const char* op;
  const char* match;
  int at;
  const char* error;        // ENOSPC or EIO
  const char* message;      // in the error line, after the run folder
  int64_t previous_global;  // the checkpoint a resume finds
};

void run_with_fault(const Fault& f, const std::string& tag) {
  const std::string& whole = reference_run();
  const std::string dir = new_run_dir(tag);
  const std::string env = std::string("LD_PRELOAD=") + PREFENGINE_FAIL_IO + " FAIL_IO_OP=" + f.op +
                          " FAIL_IO_MATCH=" + f.match + " FAIL_IO_AT=" + std::to_string(f.at) +
                          " FAIL_IO_ERRNO=" + f.error;
  const CliRun failed = start(dir, env);
  EXPECT_FALSE(failed.signaled) << failed.err;
  EXPECT_EQ(failed.code, 1) << failed.err;
  EXPECT_EQ(failed.err.find("terminate called"), std::string::npos) << failed.err;
  EXPECT_EQ(failed.err.find("LOG ERROR"), std::string::npos) << failed.err;
  const auto errors = failed.error_lines();
  ASSERT_EQ(errors.size(), 1u) << failed.err;
  EXPECT_NE(errors[0].find(dir + f.message), std::string::npos) << errors[0];
  const std::string errno_text = std::string(f.error) == "EIO" ? "Input/output error" : "No space left on device";
  EXPECT_NE(errors[0].find(errno_text), std::string::npos) << errors[0];
  // run.json: whole, and says the run failed.
  const auto status = run_status(dir);
  EXPECT_EQ(status.value("status", ""), "failed") << status.dump();
  // The previous checkpoint verifies.
  const auto point = find_resume_point(dir, /*repair=*/false);
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->state.global_step, f.previous_global) << point->checkpoint;
  EXPECT_NO_THROW(verify_checkpoint(point->checkpoint));
  // Resumed without the fault, the run ends as if it had never failed.
  const CliRun resumed = cli("run --resume " + dir + " --log-level warn");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(run_status(dir).value("status", ""), "completed");
  expect_same_metrics(whole, dir);
}

TEST(FaultInjectionTest, DiskFullInsideACheckpointKeepsThePreviousOne) {
  // The second dpo checkpoint (global step 40) fails half-way through model.pt.
  run_with_fault({"write", "/checkpoints/dpo.tmp/model.pt", 2, "ENOSPC",
                  "/checkpoints/dpo.tmp/model.pt: cannot write: ", 30}, "fault-model");
}

TEST(FaultInjectionTest, DiskFullWritingLatest) {
  // The third `latest` (dpo at global step 30): the checkpoint is in place, `latest` still names sft.
  run_with_fault({"write", "/checkpoints/latest.tmp", 3, "ENOSPC", "/checkpoints/latest.tmp: cannot write: ", 20},
                 "fault-latest");
}

TEST(FaultInjectionTest, IoErrorWritingMetrics) {
  // The sixth metrics row (dpo step 1).
  run_with_fault({"write", "/metrics.jsonl", 6, "EIO", "/metrics.jsonl: cannot write: ", 20}, "fault-metrics");
}

TEST(FaultInjectionTest, DiskFullWritingRunJson) {
  // The second run.json (after sft); the failed status is still written.
  run_with_fault({"write", "/run.json.tmp", 2, "ENOSPC", "/run.json.tmp: cannot write: ", 20}, "fault-runjson");
}

TEST(FaultInjectionTest, FsyncFailingInsideACheckpoint) {
  // sft's second checkpoint (global step 20): its optimizer.pt cannot be synced.
  run_with_fault({"fsync", "/checkpoints/sft.tmp/optimizer.pt", 2, "EIO",
                  "/checkpoints/sft.tmp/optimizer.pt: cannot write: ", 10}, "fault-fsync");
}

TEST(FaultInjectionTest, RenameFailingBetweenTheRenamesResumesFromTheTmpCopy) {
  // dpo's second checkpoint: dpo was renamed to dpo.old, dpo.tmp (complete, global step 40) cannot
  // take its place. `latest` names the missing dpo: resume takes dpo.tmp, the newest that verifies.
  run_with_fault({"rename", "/checkpoints/dpo.tmp", 2, "ENOSPC",
                  "/checkpoints/dpo: cannot rename " , 40}, "fault-rename");
}

// --- corrupted and missing checkpoints ---------------------------------------------------------

// A run stopped after global step 40 (dpo step 20): checkpoints sft (20) and dpo (40).
std::string interrupted_run(const std::string& tag) {
  const std::string dir = new_run_dir(tag);
  const CliRun r = start(dir, "PREFENGINE_STOP_AFTER_STEP=40");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(testing::read_file(dir + "/checkpoints/latest"), "dpo\n");
  return dir;
}

TEST(CorruptCheckpointTest, AFlippedByteFallsBackToTheEarlierCheckpointNamingTheFile) {
  for (const std::string file : {"model.pt", "optimizer.pt", "state.json"}) {
    SCOPED_TRACE(file);
    const std::string dir = interrupted_run("corrupt-" + file);
    flip_byte(dir + "/checkpoints/dpo/" + file);
    try {
      verify_checkpoint(dir + "/checkpoints/dpo");
      ADD_FAILURE() << "a corrupted " << file << " verified";
    } catch (const CorruptCheckpoint& e) {
      EXPECT_NE(std::string(e.what()).find(dir + "/checkpoints/dpo/" + file), std::string::npos) << e.what();
    }
    const CliRun resumed = cli("run --resume " + dir + " --log-level warn");
    ASSERT_EQ(resumed.code, 0) << resumed.err;
    EXPECT_NE(resumed.err.find(dir + "/checkpoints/dpo/" + file), std::string::npos) << resumed.err;
    EXPECT_NE(resumed.err.find("resuming from " + dir + "/checkpoints/sft (stage 'sft', global step 20)"),
              std::string::npos) << resumed.err;
    expect_same_metrics(reference_run(), dir);
  }
}

TEST(CorruptCheckpointTest, NothingVerifiesIsRefusedNamingTheFile) {
  const std::string dir = interrupted_run("corrupt-all");
  flip_byte(dir + "/checkpoints/dpo/model.pt");
  flip_byte(dir + "/checkpoints/sft/model.pt");
  const CliRun resumed = cli("run --resume " + dir + " --log-level warn");
  EXPECT_EQ(resumed.code, 1) << resumed.err;
  const auto errors = resumed.error_lines();
  ASSERT_EQ(errors.size(), 1u) << resumed.err;
  EXPECT_NE(errors[0].find("error: " + dir + ": no checkpoint verifies"), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find(dir + "/checkpoints/dpo/model.pt: checksum mismatch (the file is corrupted)"),
            std::string::npos) << errors[0];
}

TEST(CorruptCheckpointTest, LoadingWeightsVerifiesThem) {
  // Resumed mid-dpo, the stage starts from sft's final weights (load_model_weights): corrupted,
  // they are refused naming the file, not loaded.
  const std::string dir = interrupted_run("corrupt-weights");
  flip_byte(dir + "/checkpoints/sft/model.pt");
  const CliRun resumed = cli("run --resume " + dir + " --log-level warn");
  EXPECT_EQ(resumed.code, 1) << resumed.err;
  const auto errors = resumed.error_lines();
  ASSERT_EQ(errors.size(), 1u) << resumed.err;
  EXPECT_EQ(errors[0], "error: " + dir + "/checkpoints/sft/model.pt: checksum mismatch (the file is corrupted)");
  EXPECT_EQ(run_status(dir).value("status", ""), "failed");
}

TEST(CorruptCheckpointTest, APartialFileIsNamedWithItsSize) {
  const std::string dir = interrupted_run("corrupt-partial");
  const std::string path = dir + "/checkpoints/dpo/optimizer.pt";
  const auto size = fs::file_size(path);
  fs::resize_file(path, size / 2);
  try {
    verify_checkpoint(dir + "/checkpoints/dpo");
    FAIL() << "a partial file verified";
  } catch (const CorruptCheckpoint& e) {
    EXPECT_EQ(std::string(e.what()), path + ": " + std::to_string(size / 2) + " bytes, expected " +
                                         std::to_string(size) + " (the file is partial or corrupted)");
  }
}

TEST(CorruptCheckpointTest, AMissingLatestFindsTheNewestCheckpoint) {
  const std::string dir = interrupted_run("no-latest");
  fs::remove(dir + "/checkpoints/latest");
  const CliRun resumed = cli("run --resume " + dir + " --log-level warn");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find(dir + "/checkpoints/latest: missing; resuming from " + dir +
                             "/checkpoints/dpo (stage 'dpo', global step 40)"), std::string::npos) << resumed.err;
  expect_same_metrics(reference_run(), dir);
}

TEST(CorruptCheckpointTest, AnOldCopyLeftByAKillBetweenTheRenamesIsUsed) {
  // Killed after `dpo` became `dpo.old`, before `dpo.tmp` became `dpo` (here: no dpo.tmp at all).
  const std::string dir = interrupted_run("old-copy");
  fs::rename(dir + "/checkpoints/dpo", dir + "/checkpoints/dpo.old");
  const CliRun resumed = cli("run --resume " + dir + " --log-level warn");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming from " + dir + "/checkpoints/dpo.old (stage 'dpo', global step 40)"),
            std::string::npos) << resumed.err;
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/dpo/state.json"));
  EXPECT_FALSE(fs::exists(dir + "/checkpoints/dpo.old"));
  expect_same_metrics(reference_run(), dir);
}

}  // namespace
}  // namespace prefengine
