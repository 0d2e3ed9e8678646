#include "prefengine/plugin_options.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace prefengine {
namespace {

std::string format_number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string range_text(double min, double max, bool min_exclusive) {
  const bool has_min = std::isfinite(min);
  const bool has_max = std::isfinite(max);
  if (has_min && has_max) {
    return std::string("a number in ") + (min_exclusive ? "(" : "[") + format_number(min) + ", " +
           format_number(max) + "]";
  }
  if (has_min) return std::string("a number ") + (min_exclusive ? "> " : ">= ") + format_number(min);
  if (has_max) return "a number <= " + format_number(max);
  return "a number";
}

bool parse_double(const std::string& text, double* out) {
  if (text.empty()) return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0' || errno == ERANGE || std::isnan(v)) return false;
  *out = v;
  return true;
}

bool parse_int(const std::string& text, int64_t* out) {
  if (text.empty()) return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(begin, &end, 10);
  if (end == begin || *end != '\0' || errno == ERANGE) return false;
  *out = v;
  return true;
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string nearest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& candidate : candidates) {
    const size_t d = edit_distance(name, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

PluginOptions::PluginOptions(std::string path, std::string location)
    : path_(std::move(path)), location_(std::move(location)) {}

void PluginOptions::set(const std::string& key, OptionEntry entry) { entries_[key] = std::move(entry); }

void PluginOptions::set_scalar(const std::string& key, const std::string& value) {
  OptionEntry entry;
  entry.scalar = value;
  entries_[key] = std::move(entry);
}

bool PluginOptions::has(const std::string& key) const { return entries_.count(key) > 0; }

const OptionEntry* PluginOptions::lookup(const std::string& key) {
  known_.insert(key);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string PluginOptions::where(const std::string& key) const {
  std::string loc;
  auto it = entries_.find(key);
  if (it != entries_.end() && !it->second.location.empty()) {
    loc = it->second.location;
  } else {
    loc = location_;
  }
  const std::string full = path_.empty() ? key : path_ + "." + key;
  return loc.empty() ? full : loc + ": " + full;
}

void PluginOptions::fail(const std::string& key, const std::string& expected,
                         const std::string& got) const {
  throw std::invalid_argument(where(key) + ": expected " + expected + ", got " + got);
}

double PluginOptions::get_double(const std::string& key, double fallback, double min, double max,
                                 bool min_exclusive) {
  const OptionEntry* entry = lookup(key);
  if (!entry) return fallback;
  const std::string expected = range_text(min, max, min_exclusive);
  double v = 0;
  if (entry->is_list || !parse_double(entry->scalar, &v)) {
    fail(key, expected, entry->is_list ? "a list" : "'" + entry->scalar + "'");
  }
  if (v < min || v > max || (min_exclusive && v == min)) fail(key, expected, entry->scalar);
  return v;
}

double PluginOptions::require_double(const std::string& key, double min, double max,
                                     bool min_exclusive) {
  if (!has(key)) {
    known_.insert(key);
    fail(key, range_text(min, max, min_exclusive), "nothing (the key is required)");
  }
  return get_double(key, 0, min, max, min_exclusive);
}

int64_t PluginOptions::get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  const OptionEntry* entry = lookup(key);
  if (!entry) return fallback;
  std::string expected = "an integer";
  if (min != std::numeric_limits<int64_t>::min()) expected += " >= " + std::to_string(min);
  if (max != std::numeric_limits<int64_t>::max()) expected += " <= " + std::to_string(max);
  int64_t v = 0;
  if (entry->is_list || !parse_int(entry->scalar, &v)) {
    fail(key, expected, entry->is_list ? "a list" : "'" + entry->scalar + "'");
  }
  if (v < min || v > max) fail(key, expected, entry->scalar);
  return v;
}

int64_t PluginOptions::require_int(const std::string& key, int64_t min, int64_t max) {
  if (!has(key)) {
    known_.insert(key);
    fail(key, "an integer", "nothing (the key is required)");
  }
  return get_int(key, 0, min, max);
}

bool PluginOptions::get_bool(const std::string& key, bool fallback) {
  const OptionEntry* entry = lookup(key);
  if (!entry) return fallback;
  const std::string& s = entry->scalar;
  if (!entry->is_list) {
    if (s == "true" || s == "True" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "False" || s == "no" || s == "off") return false;
  }
  fail(key, "true or false", entry->is_list ? "a list" : "'" + s + "'");
}

std::string PluginOptions::get_string(const std::string& key, const std::string& fallback) {
  const OptionEntry* entry = lookup(key);
  if (!entry) return fallback;
  if (entry->is_list) fail(key, "a string", "a list");
  return entry->scalar;
}

std::string PluginOptions::require_string(const std::string& key) {
  if (!has(key)) {
    known_.insert(key);
    fail(key, "a string", "nothing (the key is required)");
  }
  return get_string(key, "");
}

std::string PluginOptions::get_choice(const std::string& key, const std::string& fallback,
                                      const std::vector<std::string>& choices) {
  const std::string value = get_string(key, fallback);
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  fail(key, "one of " + list + " (did you mean '" + nearest_name(value, choices) + "'?)",
       "'" + value + "'");
}

std::vector<std::string> PluginOptions::get_string_list(const std::string& key,
                                                        const std::vector<std::string>& fallback) {
  const OptionEntry* entry = lookup(key);
  if (!entry) return fallback;
  if (entry->is_list) return entry->list;
  return {entry->scalar};
}

std::vector<double> PluginOptions::get_double_list(const std::string& key,
                                                   const std::vector<double>& fallback) {
  const OptionEntry* entry = lookup(key);
  if (!entry) return fallback;
  std::vector<std::string> items = entry->is_list ? entry->list : std::vector<std::string>{entry->scalar};
  std::vector<double> out;
  for (const auto& item : items) {
    double v = 0;
    if (!parse_double(item, &v)) fail(key, "a list of numbers", "'" + item + "'");
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> PluginOptions::unread_keys() const {
  std::vector<std::string> out;
  for (const auto& [key, entry] : entries_) {
    if (!known_.count(key)) out.push_back(key);
  }
  return out;
}

void PluginOptions::reject_unread() const {
  const auto unread = unread_keys();
  if (unread.empty()) return;
  const std::string& key = unread.front();
  std::vector<std::string> known(known_.begin(), known_.end());
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  std::string message = where(key) + ": unknown key";
  if (!known.empty()) {
    message += " (did you mean '" + nearest_name(key, known) + "'? known keys: " + list + ")";
  } else {
    message += " (this plugin takes no options)";
  }
  throw std::invalid_argument(message);
}

}  // namespace prefengine
