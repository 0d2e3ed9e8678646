#pragma once
// The reference Jinja2 renderer for the chat-template tests: tests/tools/render_chat_template.py
// run by /usr/bin/python3 with Debian's python3-jinja2, with Hugging Face's chat-template settings.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace prefengine::testing {

struct ReferenceRenders {
  std::string unavailable;                 // why python3-jinja2 could not run; empty when it ran
  std::vector<nlohmann::ordered_json> results;  // per case: {"text": ...} or {"error": ...}
};

// cases: a list of {"template": str, "context": {...}}.
inline ReferenceRenders render_with_python_jinja2(const nlohmann::ordered_json& cases) {
  ReferenceRenders out;
  const std::string python = "/usr/bin/python3";
  if (!std::filesystem::exists(python)) {
    out.unavailable = python + " is not installed";
    return out;
  }
  const std::string dir = make_temp_dir("jinja-ref");
  const std::string in = write_file(dir + "/in.json", cases.dump());
  const std::string result = dir + "/out.json";
  const CommandResult run = run_shell(python + " " + source_path("tests/tools/render_chat_template.py") + " " + in +
                                      " " + result + " 2>&1");
  if (run.code == 3) {
    out.unavailable = "python3-jinja2 is not importable (" + run.output + ")";
  } else if (run.code != 0) {
    ADD_FAILURE() << "the reference renderer failed (exit " << run.code << "): " << run.output;
  } else {
    for (const auto& r : nlohmann::ordered_json::parse(read_file(result))) out.results.push_back(r);
    EXPECT_EQ(out.results.size(), cases.size());
  }
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace prefengine::testing
