#include "poem/unihan_readings.h"

#include <bzlib.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace prefengine::plugins::graders {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_bz2(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw std::runtime_error("cannot open " + path + " (install Debian's unicode-data)");
  int error = BZ_OK;
  BZFILE* bz = BZ2_bzReadOpen(&error, file, /*verbosity=*/0, /*small=*/0, nullptr, 0);
  if (error != BZ_OK) {
    std::fclose(file);
    throw std::runtime_error("cannot read " + path + " as bzip2");
  }
  std::string out;
  char buffer[1 << 16];
  while (error == BZ_OK) {
    const int n = BZ2_bzRead(&error, bz, buffer, sizeof(buffer));
    if (n > 0) out.append(buffer, static_cast<size_t>(n));
  }
  BZ2_bzReadClose(&error, bz);
  std::fclose(file);
  if (out.empty()) throw std::runtime_error("cannot decompress " + path);
  return out;
}

}  // namespace

void UnihanReadings::add_line(std::string_view line) {
  // "U+770B<TAB>kXHC1983<TAB>0632.020:kān 0633.060:kàn"
  if (line.size() < 8 || line.substr(0, 2) != "U+") return;
  const size_t tab1 = line.find('\t');
  if (tab1 == std::string_view::npos) return;
  const size_t tab2 = line.find('\t', tab1 + 1);
  if (tab2 == std::string_view::npos) return;
  const std::string_view field = line.substr(tab1 + 1, tab2 - tab1 - 1);
  const bool located = field == "kXHC1983" || field == "kTGHZ2013";
  if (field != "kMandarin" && field != "kHanyuPinlu" && !located) return;
  char32_t cp = 0;
  for (char h : line.substr(2, tab1 - 2)) {
    int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
    if (v < 0) return;
    cp = cp * 16 + static_cast<char32_t>(v);
  }
  std::string_view values = line.substr(tab2 + 1);
  while (!values.empty() && (values.back() == '\r' || values.back() == '\n')) values.remove_suffix(1);
  auto& readings = table_[cp];
  size_t from = 0;
  while (from <= values.size()) {
    size_t to = values.find(' ', from);
    if (to == std::string_view::npos) to = values.size();
    std::string_view item = values.substr(from, to - from);
    from = to + 1;
    if (located) {  // "0632.020:kān" (readings after the colon, comma-separated)
      const size_t colon = item.find(':');
      if (colon == std::string_view::npos) continue;
      item = item.substr(colon + 1);
    }
    const size_t paren = item.find('(');  // kHanyuPinlu: "bié(2043)"
    if (paren != std::string_view::npos) item = item.substr(0, paren);
    size_t start = 0;
    while (start <= item.size()) {
      size_t comma = item.find(',', start);
      if (comma == std::string_view::npos) comma = item.size();
      const std::string_view one = item.substr(start, comma - start);
      start = comma + 1;
      auto syllable = parse_pinyin(one);
      if (!syllable) continue;
      bool known = false;
      for (const auto& r : readings) {
        known = known || (r.initial == syllable->initial && r.final == syllable->final &&
                          r.tone == syllable->tone);
      }
      if (!known) readings.push_back(*syllable);
    }
  }
  if (readings.empty()) table_.erase(cp);
}

std::shared_ptr<const UnihanReadings> UnihanReadings::from_text(const std::string& text) {
  auto table = std::make_shared<UnihanReadings>();
  size_t from = 0;
  while (from < text.size()) {
    size_t to = text.find('\n', from);
    if (to == std::string::npos) to = text.size();
    table->add_line(std::string_view(text).substr(from, to - from));
    from = to + 1;
  }
  return table;
}

std::shared_ptr<const UnihanReadings> UnihanReadings::load(const std::string& path) {
  std::string text;
  if (ends_with(path, ".bz2")) {
    text = read_bz2(path);
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  auto table = from_text(text);
  if (table->size() == 0) throw std::runtime_error(path + " has no Mandarin readings");
  return table;
}

std::shared_ptr<const UnihanReadings> UnihanReadings::cached(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const UnihanReadings>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[path];
  if (!slot) slot = load(path);
  return slot;
}

const std::vector<Syllable>& UnihanReadings::readings(char32_t c) const {
  static const std::vector<Syllable> kNone;
  const auto it = table_.find(c);
  return it == table_.end() ? kNone : it->second;
}

}  // namespace prefengine::plugins::graders
