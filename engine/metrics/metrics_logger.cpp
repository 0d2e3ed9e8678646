#include "engine/metrics/metrics_logger.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "engine/io/durable_file.h"
#include "engine/metrics/tensorboard_writer.h"

namespace prefengine {
namespace {

std::string csv_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  std::ostringstream out;
  out << std::setprecision(9) << v;
  return out.str();
}

}  // namespace

void MetricsRow::set(const std::string& name, double value) {
  for (auto& [k, v] : values) {
    if (k == name) {
      v = value;
      return;
    }
  }
  values.emplace_back(name, value);
}

const double* MetricsRow::find(const std::string& name) const {
  for (const auto& [k, v] : values) {
    if (k == name) return &v;
  }
  return nullptr;
}

MetricsLogger::MetricsLogger(const std::string& directory, bool append)
    : jsonl_path_(directory + "/metrics.jsonl"), csv_path_(directory + "/metrics.csv") {
  if (append) {
    // The columns keep the order of the existing metrics.csv header (its rows are rewritten
    // below under it); columns only metrics.jsonl has follow in the order they appear there.
    {
      std::ifstream csv(csv_path_);
      std::string header;
      if (csv && std::getline(csv, header)) {
        std::stringstream fields(header);
        std::string field;
        for (int i = 0; std::getline(fields, field, ','); ++i) {
          if (i >= 3 && !field.empty()) columns_.push_back(field);  // after stage,step,global_step
        }
      }
    }
    std::ifstream in(jsonl_path_);
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty()) continue;
      const auto json = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (json.is_discarded() || !json.is_object()) {
        throw std::invalid_argument(jsonl_path_ + ":" + std::to_string(number) + ": expected a metrics row (JSON object)");
      }
      MetricsRow row;
      for (auto it = json.begin(); it != json.end(); ++it) {
        if (it.key() == "stage") row.stage = it.value().get<std::string>();
        else if (it.key() == "step") row.step = it.value().get<int64_t>();
        else if (it.key() == "global_step") row.global_step = it.value().get<int64_t>();
        else row.values.emplace_back(it.key(), it.value().is_number() ? it.value().get<double>() : NAN);
      }
      for (const auto& [k, v] : row.values) {
        if (std::find(columns_.begin(), columns_.end(), k) == columns_.end()) columns_.push_back(k);
      }
      rows_.push_back(std::move(row));
    }
    write_csv();
  } else {
    write_file_synced(jsonl_path_, "");
  }
}

MetricsLogger::~MetricsLogger() = default;

void MetricsLogger::enable_tensorboard(const std::string& root, const std::set<std::string>& stages) {
  namespace fs = boost::filesystem;
  tensorboard_root_ = root;
  tensorboard_stages_ = stages;
  tensorboard_.clear();
  for (const auto& stage : stages) {
    const fs::path dir = fs::path(root) / stage;
    boost::system::error_code error;
    if (fs::is_directory(dir, error)) {
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().filename().string().rfind("events.out.tfevents.", 0) != 0) continue;
        fs::remove(entry.path(), error);
        if (error) throw std::runtime_error(entry.path().string() + ": cannot remove: " + error.message());
      }
    }
  }
  for (const auto& row : rows_) {
    if (!stages.count(row.stage)) continue;
    auto& writer = tensorboard_[row.stage];
    if (!writer) writer = std::make_unique<TensorBoardWriter>(root + "/" + row.stage);
    writer->add_scalars(row.step, row.values);
  }
}

void MetricsLogger::log(const MetricsRow& row) {
  const size_t columns_before = columns_.size();
  nlohmann::ordered_json json;
  json["stage"] = row.stage;
  json["step"] = row.step;
  json["global_step"] = row.global_step;
  for (const auto& [k, v] : row.values) {
    if (std::isfinite(v)) json[k] = v;
    else json[k] = nullptr;  // JSON has no NaN/Inf; metrics.csv keeps the text
    if (std::find(columns_.begin(), columns_.end(), k) == columns_.end()) columns_.push_back(k);
  }
  append_file_checked(jsonl_path_, json.dump() + "\n");
  rows_.push_back(row);
  if (columns_.size() != columns_before || rows_.size() == 1) {
    write_csv();  // a new column: rewrite under the new header
  } else {
    append_file_checked(csv_path_, csv_line(row) + "\n");
  }
  if (tensorboard_stages_.count(row.stage)) {
    auto& writer = tensorboard_[row.stage];
    if (!writer) writer = std::make_unique<TensorBoardWriter>(tensorboard_root_ + "/" + row.stage);
    writer->add_scalars(row.step, row.values);
  }
}

std::string MetricsLogger::csv_line(const MetricsRow& row) const {
  std::string line = row.stage + "," + std::to_string(row.step) + "," + std::to_string(row.global_step);
  for (const auto& c : columns_) {
    line += ",";
    if (const double* v = row.find(c)) line += csv_number(*v);
  }
  return line;
}

void MetricsLogger::write_csv() const {
  std::string text = "stage,step,global_step";
  for (const auto& c : columns_) text += "," + c;
  text += "\n";
  for (const auto& row : rows_) text += csv_line(row) + "\n";
  write_file_durably(csv_path_, text);
}

void MetricsLogger::sync() const {
  sync_path(jsonl_path_);
  if (!rows_.empty()) sync_path(csv_path_);
  for (const auto& [stage, writer] : tensorboard_) writer->sync();
}

}  // namespace prefengine
