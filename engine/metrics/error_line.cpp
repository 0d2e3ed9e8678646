#include "engine/metrics/error_line.h"

#include <c10/util/Exception.h>

namespace prefengine {

std::string error_line(const std::string& message) {
  std::string text = message;
  const size_t raised = text.find("Exception raised from");
  if (raised != std::string::npos) text.erase(raised);
  const size_t frames = text.find("frame #");
  if (frames != std::string::npos) text.erase(frames);
  std::string line;
  bool pending_break = false;
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      pending_break = !line.empty();
      continue;
    }
    if (pending_break) {
      while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
      if (!line.empty() && line.back() != ':' && line.back() != ';' && line.back() != '(') line += ";";
      if (!line.empty()) line += " ";
      pending_break = false;
      if (c == ' ' || c == '\t') continue;
    }
    if ((c == ' ' || c == '\t') && (line.empty() || line.back() == ' ')) continue;
    line += c;
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  return line.empty() ? "unknown error" : line;
}

std::string error_line(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return error_line(c10_error->what_without_backtrace());
  }
  return error_line(e.what());
}

bool has_backtrace(const std::exception& e) { return error_line(e) != e.what(); }

}  // namespace prefengine
