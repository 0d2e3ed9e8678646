#pragma once
// Options handed to a plugin's factory: the keys of its YAML block (nested maps flattened to
// "a.b"), each with the file:line:column it came from. A plugin reads the keys it knows through
// the typed getters, which validate and throw std::invalid_argument naming the location, the key,
// what was expected and what was found. After construction the engine rejects every key the
// plugin did not read, naming the nearest key it did read.
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#define PREFENGINE_OPTIONS_API __attribute__((visibility("default")))

namespace prefengine {

struct OptionEntry {
  std::string scalar;             // the text of a scalar value
  std::vector<std::string> list;  // the items of a list of scalars
  bool is_list = false;           // true for a list value
  std::string location;           // "file:line:column" of the value, empty when unknown
};

class PREFENGINE_OPTIONS_API PluginOptions {
 public:
  // path: where the block sits in the config, e.g. "stages[1].loss"; used in messages.
  explicit PluginOptions(std::string path = "", std::string location = "");

  void set(const std::string& key, OptionEntry entry);
  void set_scalar(const std::string& key, const std::string& value);
  bool has(const std::string& key) const;

  // Typed getters. The first form returns `fallback` when the key is absent; `require_*` throw.
  // Bounds are inclusive; use min_exclusive for "> min".
  double get_double(const std::string& key, double fallback,
                    double min = -std::numeric_limits<double>::infinity(),
                    double max = std::numeric_limits<double>::infinity(), bool min_exclusive = false);
  double require_double(const std::string& key,
                        double min = -std::numeric_limits<double>::infinity(),
                        double max = std::numeric_limits<double>::infinity(),
                        bool min_exclusive = false);
  int64_t get_int(const std::string& key, int64_t fallback,
                  int64_t min = std::numeric_limits<int64_t>::min(),
                  int64_t max = std::numeric_limits<int64_t>::max());
  int64_t require_int(const std::string& key, int64_t min = std::numeric_limits<int64_t>::min(),
                      int64_t max = std::numeric_limits<int64_t>::max());
  bool get_bool(const std::string& key, bool fallback);
  std::string get_string(const std::string& key, const std::string& fallback);
  std::string require_string(const std::string& key);
  // One of `choices`; an unknown value names the nearest choice.
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices);
  // A list of scalars (a single scalar counts as a one-item list).
  std::vector<std::string> get_string_list(const std::string& key,
                                           const std::vector<std::string>& fallback);
  std::vector<double> get_double_list(const std::string& key, const std::vector<double>& fallback);

  // Keys present but never read, and keys that were read (present or not).
  std::vector<std::string> unread_keys() const;
  const std::set<std::string>& known_keys() const { return known_; }
  const std::map<std::string, OptionEntry>& entries() const { return entries_; }
  const std::string& path() const { return path_; }
  const std::string& location() const { return location_; }

  // Throws std::invalid_argument for the first unread key, naming the nearest known key.
  void reject_unread() const;

  // "file:line:col: path.key: expected ..., got '...'"
  [[noreturn]] void fail(const std::string& key, const std::string& expected,
                         const std::string& got) const;

 private:
  const OptionEntry* lookup(const std::string& key);
  std::string where(const std::string& key) const;

  std::string path_;
  std::string location_;
  std::map<std::string, OptionEntry> entries_;
  std::set<std::string> known_;
};

// Levenshtein distance and the nearest candidate (empty when there is none).
PREFENGINE_OPTIONS_API size_t edit_distance(const std::string& a, const std::string& b);
PREFENGINE_OPTIONS_API std::string nearest_name(const std::string& name,
                                                const std::vector<std::string>& candidates);

}  // namespace prefengine
