// The offline tasks' data (configs/lm/{math,poem,slogan}): each generator reproduces its committed
// files byte for byte, the train and held-out sets are disjoint, and the project's own graders,
// run as `prefengine grade` through the executable, give the reference answers full marks and
// wrong ones low marks.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

namespace fs = boost::filesystem;
using nlohmann::json;
using prefengine::testing::CommandResult;
using prefengine::testing::make_temp_dir;
using prefengine::testing::read_file;
using prefengine::testing::run_shell;

const std::string kSource = PREFENGINE_SOURCE_DIR;
const std::string kFortunes = "/usr/share/games/fortunes";

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> rows;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  return rows;
}

// Runs a generator script with `args`; fails the test when it exits non-zero.
void run_script(const std::string& script, const std::string& args) {
  const CommandResult r = run_shell("python3 " + kSource + "/" + script + " " + args + " 2>&1");
  ASSERT_EQ(r.code, 0) << script << ": " << r.output;
}

// Grades `records` ({"prompt", "response", "reference"?}) with `prefengine grade`; the output rows.
std::vector<json> grade(const std::string& grader, const std::vector<json>& records,
                        const std::string& dir) {
  std::string text;
  for (const json& r : records) text += r.dump() + "\n";
  const std::string input = prefengine::testing::write_file(dir + "/" + grader + "-in.jsonl", text);
  const std::string output = dir + "/" + grader + "-out.jsonl";
  const CommandResult r = run_shell(std::string(PREFENGINE_CLI) + " grade --grader " + grader +
                                    " --input " + input + " --output " + output + " 2>&1");
  EXPECT_EQ(r.code, 0) << r.output;
  std::vector<json> rows = read_jsonl(output);
  EXPECT_EQ(rows.size(), records.size());
  for (const json& row : rows) EXPECT_FALSE(row.contains("error")) << row.dump();
  return rows;
}

// The committed files of `folder` equal those the generator writes into `fresh`.
void expect_same_files(const std::string& folder, const std::string& fresh,
                       const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const std::string committed = read_file(kSource + "/" + folder + "/" + name);
    const std::string made = read_file(fresh + "/" + name);
    EXPECT_FALSE(made.empty()) << name;
    EXPECT_TRUE(committed == made) << folder << "/" << name
                                   << " differs from what the generator writes now; rerun it";
  }
}

std::set<std::string> prompts_of(const std::vector<json>& rows) {
  std::set<std::string> prompts;
  for (const json& r : rows) prompts.insert(r.at("prompt").get<std::string>());
  return prompts;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// ------------------------------------------------------------------------------------------ math

const std::vector<std::string> kMathFiles = {
    "sft.jsonl",    "train_prompts.jsonl",    "prompts.jsonl",    "pairs.jsonl",
    "sft_zh.jsonl", "train_prompts_zh.jsonl", "prompts_zh.jsonl", "pairs_zh.jsonl"};

// The generator's output in a temporary folder, made once per test process: what the tests below
// read (GeneratorReproducesTheCommittedFiles shows it equals the committed files).
const std::string& generated_math() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("lm-math");
    const CommandResult r = run_shell("python3 " + kSource + "/configs/lm/math/make_math.py --out " + d + " 2>&1");
    EXPECT_EQ(r.code, 0) << r.output;
    return d + "/";
  }();
  return dir;
}

TEST(MathTask, GeneratorReproducesTheCommittedFiles) {
  const std::string dir = generated_math();
  expect_same_files("configs/lm/math", dir, kMathFiles);
  // Another seed gives other problems.
  run_script("configs/lm/math/make_math.py", "--seed 1 --out " + dir + "/seed1");
  EXPECT_NE(read_file(dir + "/seed1/prompts.jsonl"), read_file(dir + "/prompts.jsonl"));
}

TEST(MathTask, SplitsAreDisjointAndHeldOutCoversEveryKindAndLevel) {
  const std::string d = generated_math();
  for (const std::string suffix : {"", "_zh"}) {
    const auto sft = read_jsonl(d + "sft" + suffix + ".jsonl");
    const auto train = read_jsonl(d + "train_prompts" + suffix + ".jsonl");
    const auto held = read_jsonl(d + "prompts" + suffix + ".jsonl");
    EXPECT_EQ(sft.size(), suffix[0] ? 2000u : 3000u);
    EXPECT_EQ(train.size(), 400u);
    EXPECT_EQ(held.size(), 200u);
    const auto a = prompts_of(sft), b = prompts_of(train), c = prompts_of(held);
    EXPECT_EQ(a.size(), sft.size()) << "repeated SFT prompts";
    EXPECT_EQ(b.size(), train.size());
    EXPECT_EQ(c.size(), held.size());
    for (const auto& p : c) EXPECT_EQ(a.count(p) + b.count(p), 0u) << "held-out prompt in training: " << p;
    for (const auto& p : b) EXPECT_EQ(a.count(p), 0u) << "train prompt in the SFT set: " << p;
    // Word problems differ in their numbers too, not only in names and things.
    const auto numbers_of = [](const std::vector<json>& rows) {
      std::set<std::string> keys;
      for (const json& r : rows) {
        if (r.at("kind") != "word" && r.at("kind") != "zh") continue;
        std::string key = r.at("kind").get<std::string>() + std::to_string(r.at("level").get<int>());
        const std::string p = r.at("prompt");
        for (size_t i = 0; i < p.size(); ++i) {
          const bool digit = p[i] >= '0' && p[i] <= '9';
          if (digit && (i == 0 || !(p[i - 1] >= '0' && p[i - 1] <= '9'))) key += ' ';
          if (digit) key += p[i];
        }
        keys.insert(key);
      }
      return keys;
    };
    const auto na = numbers_of(sft), nb = numbers_of(train), nc = numbers_of(held);
    EXPECT_GE(nc.size(), suffix[0] ? 200u : 36u);
    for (const auto& k : nc) EXPECT_EQ(na.count(k) + nb.count(k), 0u) << "held-out word problem in training: " << k;
    std::set<std::pair<std::string, int>> kinds_sft, kinds_held;
    for (const json& r : sft) kinds_sft.insert({r.at("kind").get<std::string>(), r.at("level").get<int>()});
    for (const json& r : held) kinds_held.insert({r.at("kind").get<std::string>(), r.at("level").get<int>()});
    EXPECT_EQ(kinds_held, kinds_sft);
    EXPECT_EQ(kinds_held.size(), suffix[0] ? 2u : 11u);
    // The final line states the reference: \boxed{reference} or 答案是 reference.
    for (const json& r : held) {
      const std::string solution = r.at("solution"), reference = r.at("reference");
      ASSERT_FALSE(reference.empty());
      const std::string last = suffix[0] ? "\n答案是 " + reference
                                         : "\nThe answer is \\boxed{" + reference + "}.";
      EXPECT_TRUE(ends_with(solution, last)) << solution;
    }
  }
}

// --sft N (the base-model recipe's data, configs/lm/math/base.yaml) continues the same problem
// stream: the held-out and train files and the first 3000 SFT rows stay the committed ones, and the
// further SFT rows are new problems, none a held-out or train prompt.
TEST(MathTask, LargerSftSetKeepsTheCommittedRowsAndTheHeldOutSet) {
  const std::string d = make_temp_dir("lm-math-more");
  run_script("configs/lm/math/make_math.py", "--sft 3600 --out " + d);
  expect_same_files("configs/lm/math", d + "/", {"train_prompts.jsonl", "prompts.jsonl", "pairs.jsonl",
                                                 "sft_zh.jsonl", "prompts_zh.jsonl"});
  const auto more = read_jsonl(d + "/sft.jsonl");
  const auto committed = read_jsonl(kSource + "/configs/lm/math/sft.jsonl");
  ASSERT_EQ(more.size(), 3600u);
  for (size_t i = 0; i < committed.size(); ++i) ASSERT_EQ(more[i], committed[i]) << "row " << i;
  const auto a = prompts_of(more);
  EXPECT_EQ(a.size(), more.size()) << "repeated SFT prompts";
  for (const std::string file : {"prompts.jsonl", "train_prompts.jsonl"}) {
    for (const auto& p : prompts_of(read_jsonl(d + "/" + file))) EXPECT_EQ(a.count(p), 0u) << p;
  }
}

TEST(MathTask, EveryReferenceSolutionGradesFullMarks) {
  const std::string d = generated_math();
  std::vector<json> records;
  for (const std::string suffix : {"", "_zh"}) {
    for (const std::string file : {"train_prompts", "prompts"}) {
      for (const json& r : read_jsonl(d + file + suffix + ".jsonl")) {
        records.push_back({{"prompt", r["prompt"]}, {"response", r["solution"]},
                           {"reference", r["reference"]}});
      }
    }
    const auto sft = read_jsonl(d + "sft" + suffix + ".jsonl");
    for (size_t i = 0; i < sft.size(); i += 10) {
      records.push_back({{"prompt", sft[i]["prompt"]}, {"response", sft[i]["completion"]},
                         {"reference", sft[i]["reference"]}});
    }
  }
  const auto graded = grade("math", records, make_temp_dir("lm-math-grade"));
  ASSERT_EQ(graded.size(), 1700u);
  size_t full = 0;
  for (const json& g : graded) {
    full += g.value("score", 0.0) == 5.0 ? 1 : 0;
    EXPECT_EQ(g.value("score", 0.0), 5.0) << g.dump();
  }
  std::printf("math: %zu of %zu reference solutions graded 5\n", full, graded.size());
}

// A wrong final answer: an integer moved by one, a fraction's numerator moved by one.
std::string wrong_answer(const std::string& reference) {
  if (reference.rfind("\\frac{", 0) == 0) {
    const size_t close = reference.find('}');
    const long n = std::stol(reference.substr(6, close - 6));
    return "\\frac{" + std::to_string(n + 1) + reference.substr(close);
  }
  return std::to_string(std::stol(reference) + 1);
}

TEST(MathTask, WrongAnswersGradeLow) {
  const std::string d = generated_math();
  std::vector<json> bare, pairs_chosen, pairs_rejected;
  for (const std::string suffix : {"", "_zh"}) {
    for (const json& r : read_jsonl(d + "prompts" + suffix + ".jsonl")) {
      const std::string wrong = wrong_answer(r.at("reference"));
      bare.push_back({{"prompt", r["prompt"]},
                      {"response", suffix[0] ? "答案是 " + wrong : "\\boxed{" + wrong + "}"},
                      {"reference", r["reference"]}});
    }
    const auto train = read_jsonl(d + "train_prompts" + suffix + ".jsonl");
    const auto pairs = read_jsonl(d + "pairs" + suffix + ".jsonl");
    ASSERT_EQ(pairs.size(), train.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      ASSERT_EQ(pairs[i]["prompt"], train[i]["prompt"]);
      pairs_chosen.push_back({{"prompt", pairs[i]["prompt"]}, {"response", pairs[i]["chosen"]},
                              {"reference", train[i]["reference"]}});
      pairs_rejected.push_back({{"prompt", pairs[i]["prompt"]}, {"response", pairs[i]["rejected"]},
                                {"reference", train[i]["reference"]}});
    }
  }
  std::vector<json> all;
  for (auto [name, rows] : {std::pair{"bare", &bare}, {"chosen", &pairs_chosen}, {"rejected", &pairs_rejected}}) {
    for (json r : *rows) {
      r["case"] = name;
      all.push_back(r);
    }
  }
  for (const json& g : grade("math", all, make_temp_dir("lm-math-wrong"))) {
    const std::string c = g.at("case");
    if (c == "bare") {
      EXPECT_EQ(g.value("score", 0.0), 1.0) << g.dump();
    }
    if (c == "chosen") {
      EXPECT_EQ(g.value("score", 0.0), 5.0) << g.dump();
    }
    // The rejected solutions keep the right working and state a wrong answer: the rubric's 3
    // ("wrong answer with a mostly correct process") at best, never 4 or 5.
    if (c == "rejected") {
      EXPECT_LE(g.value("score", 5.0), 3.0) << g.dump();
      EXPECT_EQ(g["scores"].value("answer", 1.0), 0.0) << g.dump();
    }
  }
}

// ------------------------------------------------------------------------------------------ poem

bool have_fortunes() { return fs::exists(kFortunes + "/tang300") && fs::exists(kFortunes + "/song100"); }

const std::vector<std::string> kPoemFiles = {"corpus.jsonl", "corpus_heldout.jsonl", "sft.jsonl",
                                             "train_prompts.jsonl", "prompts.jsonl"};

std::string base_title(const std::string& title) {
  return title.substr(0, title.find("・"));
}

TEST(PoemTask, PrepReproducesTheCommittedFilesFromFortunesZh) {
  if (!have_fortunes()) {
    GTEST_SKIP() << kFortunes << "/tang300 and song100 are not installed (Debian package fortunes-zh)";
  }
  const std::string dir = make_temp_dir("lm-poem");
  run_script("configs/lm/poem/make_poem.py", "--out " + dir);
  expect_same_files("configs/lm/poem", dir, kPoemFiles);
}

TEST(PoemTask, CorpusComesFromTheSourceAndIsSplitByTitle) {
  if (!have_fortunes()) {
    GTEST_SKIP() << kFortunes << "/tang300 and song100 are not installed (Debian package fortunes-zh)";
  }
  // Every verse line of the corpus is a line of the installed files; every entry is used.
  std::set<std::string> source_lines;
  size_t entries = 0;
  for (const std::string name : {"tang300", "song100"}) {
    std::istringstream in(read_file(kFortunes + "/" + name));
    for (std::string line; std::getline(in, line);) {
      source_lines.insert(line);
      if (line.find("作者") != std::string::npos && line.find("作者") < 8) ++entries;
    }
  }
  EXPECT_GE(entries, 400u);  // 409 in fortunes-zh 2.98
  const std::string d = kSource + "/configs/lm/poem/";
  const auto train = read_jsonl(d + "corpus.jsonl"), held = read_jsonl(d + "corpus_heldout.jsonl");
  EXPECT_GE(train.size() + held.size(), entries);
  EXPECT_GE(held.size(), 20u);
  std::set<std::string> train_titles, held_titles;
  for (const auto* rows : {&train, &held}) {
    for (const json& r : *rows) {
      std::istringstream body(r.at("body").get<std::string>());
      for (std::string line; std::getline(body, line);) {
        EXPECT_EQ(source_lines.count(line), 1u) << "not a line of fortunes-zh: " << line;
      }
      (rows == &train ? train_titles : held_titles).insert(base_title(r.at("title")));
    }
  }
  for (const auto& t : held_titles) EXPECT_EQ(train_titles.count(t), 0u) << t;
  // The prompts follow the corpus split.
  for (const json& r : read_jsonl(d + "prompts.jsonl")) {
    const std::string p = r.at("prompt");
    const size_t open = p.find("《") + std::string("《").size();
    EXPECT_EQ(held_titles.count(base_title(p.substr(open, p.find("》") - open))), 1u) << p;
  }
  const auto held_prompts = prompts_of(read_jsonl(d + "prompts.jsonl"));
  for (const auto* file : {"train_prompts.jsonl", "sft.jsonl"}) {
    for (const auto& p : prompts_of(read_jsonl(d + file))) EXPECT_EQ(held_prompts.count(p), 0u) << p;
  }
}

// scripts/poem_form_share.py (the poem base model's "in the asked form" count) on the SFT poems as
// answers to their own prompts: all but the two 宋诗 whose verse line ends in "：" (see the README).
TEST(PoemTask, FormShareScriptCountsTheSftPoems) {
  std::string text;
  for (const json& r : read_jsonl(kSource + "/configs/lm/poem/sft.jsonl")) {
    text += json({{"prompt", r["prompt"]}, {"response", r["completion"]}}).dump() + "\n";
  }
  const std::string dir = make_temp_dir("lm-poem-form");
  const std::string input = prefengine::testing::write_file(dir + "/answers.jsonl", text);
  const CommandResult r = run_shell("python3 " + kSource + "/scripts/poem_form_share.py --prefengine " +
                                    std::string(PREFENGINE_CLI) + " " + input + " 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("in_asked_form=273/275 (0.993)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("五言绝句=34/34 七言绝句=84/84 五言律诗=80/80 七言律诗=75/77"), std::string::npos)
      << r.output;
}

// Reads the committed corpus (made from fortunes-zh), so it runs without the package installed.
TEST(PoemTask, GraderFindsTheRealQuatrainsAndRegulatedVersesInTheirForm) {
  const std::string d = kSource + "/configs/lm/poem/";
  std::vector<json> asked, wrong_form;
  const std::map<std::string, std::string> other = {
      {"五言绝句", "七言律诗"}, {"七言绝句", "五言律诗"}, {"五言律诗", "七言绝句"}, {"七言律诗", "五言绝句"}};
  for (const std::string file : {"corpus.jsonl", "corpus_heldout.jsonl"}) {
    for (const json& r : read_jsonl(d + file)) {
      const std::string form = r.at("form"), title = r.at("title");
      if (form == "other" || title.find("绝句") != std::string::npos) continue;  // 梅花绝句
      const std::string response = "《" + title + "》\n" + r.at("body").get<std::string>();
      asked.push_back({{"prompt", "请以《" + title + "》为题，写一首" + form + "。"}, {"response", response},
                       {"case", "asked"}});
      wrong_form.push_back({{"prompt", "请以《" + title + "》为题，写一首" + other.at(form) + "。"},
                            {"response", response}, {"case", "wrong_form"}});
    }
  }
  ASSERT_GE(asked.size(), 300u);
  std::vector<json> all = asked;
  all.insert(all.end(), wrong_form.begin(), wrong_form.end());
  // The SFT rows and the prompt rows' references, against their own prompts.
  size_t own = 0;
  for (const json& r : read_jsonl(d + "sft.jsonl")) {
    all.push_back({{"prompt", r["prompt"]}, {"response", r["completion"]}, {"case", "own"}}), ++own;
  }
  for (const std::string file : {"train_prompts.jsonl", "prompts.jsonl"}) {
    for (const json& r : read_jsonl(d + file)) {
      if (!r.contains("reference")) continue;
      all.push_back({{"prompt", r["prompt"]}, {"response", r["reference"]}, {"case", "own"}}), ++own;
    }
  }
  const std::vector<json> graded = grade("poem", all, make_temp_dir("lm-poem-grade"));
  size_t structure = 0, rhyme = 0, title = 0, own_structure = 0;
  double score = 0, tone = 0;
  for (const json& g : graded) {
    const json& s = g.at("scores");
    if (g.at("case") == "own") {
      // Every prompt's title is one the grader finds in the answer (long titles are left out).
      EXPECT_EQ(s.at("title"), 1.0) << g.dump();
      own_structure += s.at("row_number") == 1.0 && s.at("chars_per_row") == 1.0 ? 1 : 0;
      continue;
    }
    if (g.at("case") == "wrong_form") {
      // Asked for the other length and the other number of rows, no poem fits either.
      EXPECT_EQ(s.at("row_number"), 0.0) << g.dump();
      EXPECT_EQ(s.at("chars_per_row"), 0.0) << g.dump();
      continue;
    }
    structure += s.at("row_number") == 1.0 && s.at("chars_per_row") == 1.0 ? 1 : 0;
    rhyme += s.at("rhyme") == 1.0 ? 1 : 0;
    title += s.at("title") == 1.0 ? 1 : 0;
    tone += s.at("tone_pattern").get<double>();
    score += g.at("score").get<double>();
  }
  const double n = static_cast<double>(asked.size());
  std::printf("poem: %zu regular poems; in the asked rows and characters per row %.1f%%, all even "
              "lines in one rhyme group %.1f%%, title found %.1f%%, mean tone_pattern %.3f, mean "
              "score %.3f\n", asked.size(), 100 * structure / n, 100 * rhyme / n, 100 * title / n,
              tone / n, score / n);
  // Measured 2026-12-01 on fortunes-zh 2.98: 99.4% (2 poems with a colon ending a verse line
  // lose two rows), 76.6%, 93.6% (titles of 10+ characters read as chat text), 0.781, 0.924.
  EXPECT_GE(structure / n, 0.95);
  EXPECT_GE(rhyme / n, 0.70);
  EXPECT_GE(score / n, 0.85);
  ASSERT_GE(own, 500u);
  EXPECT_GE(static_cast<double>(own_structure) / own, 0.95);  // 558 of 561 measured
}

// ---------------------------------------------------------------------------------------- slogan

const std::vector<std::string> kSloganFiles = {"corpus.jsonl", "sft.jsonl", "train_prompts.jsonl",
                                               "prompts.jsonl"};

// (product, keyword) of a slogan prompt, read with this test's own pattern.
std::pair<std::string, std::string> product_and_keyword(const std::string& prompt) {
  static const std::regex en("^Write a slogan for (.+) in .* Include the word \"(.+)\"\\.");
  static const std::regex zh("^请为(.+)写一句广告语，.*需包含“(.+)”。");
  std::smatch m;
  if (std::regex_search(prompt, m, en) || std::regex_search(prompt, m, zh)) return {m[1], m[2]};
  ADD_FAILURE() << "unexpected slogan prompt: " << prompt;
  return {};
}

// The generator's output in a temporary folder, made once per test process.
const std::string& generated_slogan() {
  static const std::string dir = [] {
    const std::string d = make_temp_dir("lm-slogan");
    const CommandResult r = run_shell("python3 " + kSource + "/configs/lm/slogan/make_slogan.py --out " + d + " 2>&1");
    EXPECT_EQ(r.code, 0) << r.output;
    return d + "/";
  }();
  return dir;
}

TEST(SloganTask, GeneratorReproducesTheCommittedFilesAndSplitsByProductAndKeyword) {
  const std::string d = generated_slogan();
  expect_same_files("configs/lm/slogan", d, kSloganFiles);
  const auto held = read_jsonl(d + "prompts.jsonl");
  std::set<std::pair<std::string, std::string>> held_pairs, train_pairs;
  for (const json& r : held) held_pairs.insert(product_and_keyword(r.at("prompt")));
  for (const auto* file : {"train_prompts.jsonl", "sft.jsonl"}) {
    for (const json& r : read_jsonl(d + file)) train_pairs.insert(product_and_keyword(r.at("prompt")));
  }
  EXPECT_GE(held_pairs.size(), 20u);
  EXPECT_GE(train_pairs.size(), 200u);
  for (const auto& p : held_pairs) {
    EXPECT_EQ(train_pairs.count(p), 0u) << "held-out product and keyword in training: " << p.first
                                        << " / " << p.second;
  }
  EXPECT_GE(read_jsonl(d + "corpus.jsonl").size(), 1000u);
}

TEST(SloganTask, ReferencesMeetTheirPromptsAndViolationsAreCaught) {
  const std::string d = generated_slogan();
  std::vector<json> good, no_keyword, too_long, banned, repeated;
  for (const auto* file : {"prompts.jsonl", "train_prompts.jsonl"}) {
    for (const json& r : read_jsonl(d + file)) {
      const std::string prompt = r.at("prompt"), slogan = r.at("reference");
      const std::string keyword = product_and_keyword(prompt).second;
      const bool zh = r.at("lang") == "zh";
      good.push_back({{"prompt", prompt}, {"response", slogan}});
      // The keyword replaced by another word of the same kind.
      std::string without = slogan;
      for (size_t at; (at = without.find(keyword)) != std::string::npos;) {
        without.replace(at, keyword.size(), zh ? "优雅" : "lovely");
      }
      std::string capital = keyword;
      capital[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(capital[0])));
      for (size_t at; !zh && (at = without.find(capital)) != std::string::npos;) {
        without.replace(at, capital.size(), "Lovely");
      }
      no_keyword.push_back({{"prompt", prompt}, {"response", without}});
      too_long.push_back({{"prompt", prompt},
                          {"response", slogan + (zh ? "春夏秋冬日月星辰山川湖海风雨雷电" :
                                                      " and so much more than you ever imagined today")}});
      if (zh) banned.push_back({{"prompt", prompt}, {"response", " 国家级" + slogan.substr(1)}});
      repeated.push_back({{"prompt", prompt}, {"response", slogan + slogan}});
    }
  }
  ASSERT_FALSE(banned.empty());
  // One run of the executable for all cases (each start loads the plugin): a "case" field tags them.
  std::vector<json> all;
  for (auto [name, rows] : {std::pair{"good", &good}, {"no_keyword", &no_keyword}, {"too_long", &too_long},
                            {"banned", &banned}, {"repeated", &repeated}}) {
    for (json r : *rows) {
      r["case"] = name;
      all.push_back(r);
    }
  }
  for (const json& g : grade("slogan", all, make_temp_dir("lm-slogan-grade"))) {
    const std::string c = g.at("case");
    const json& s = g.at("scores");
    if (c == "good") {
      EXPECT_EQ(g.value("score", 0.0), 1.0) << g.dump();
    }
    if (c == "no_keyword") {
      EXPECT_EQ(s.at("keywords"), 0.0) << g.dump();
    }
    if (c == "too_long") {
      EXPECT_LT(s.at("word_count"), 1.0) << g.dump();
    }
    if (c == "banned") {
      EXPECT_LT(s.at("banned_words"), 1.0) << g.dump();
    }
    if (c == "repeated") {
      EXPECT_LT(s.at("repetition"), 1.0) << g.dump();
      EXPECT_LT(g.value("score", 1.0), 1.0) << g.dump();
    }
  }
}

// ---------------------------------------------------------------------------------------- engine

// `prefengine validate` reads every stage's data: each task file in the format its stage expects
// (the extra fields kind, level, solution, form, lang are ignored), none skipped.
TEST(TaskFiles, EngineReadsEveryFile) {
  std::string yaml = R"(name: lm-tasks-validate
seed: 0
threads: 1
tokenizer: {kind: byte}
model: {plugin: transformer, vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 512, tie_word_embeddings: true}
stages:
  - {name: math, kind: sft, data: {path: @/math/sft.jsonl, max_length: 512}, optimizer: {name: adamw, lr: 1.0e-3}, batch_size: 4, steps: 1}
  - {name: math_zh, kind: sft, data: {path: @/math/sft_zh.jsonl, max_length: 512}, optimizer: {name: adamw, lr: 1.0e-3}, batch_size: 4, steps: 1}
  - {name: poem_corpus, kind: sft, data: {path: @/poem/corpus.jsonl, max_length: 512}, optimizer: {name: adamw, lr: 1.0e-3}, batch_size: 4, steps: 1}
  - {name: poem, kind: sft, data: {path: @/poem/sft.jsonl, max_length: 512}, optimizer: {name: adamw, lr: 1.0e-3}, batch_size: 4, steps: 1}
  - {name: slogan, kind: sft, data: {path: @/slogan/sft.jsonl, max_length: 512}, optimizer: {name: adamw, lr: 1.0e-3}, batch_size: 4, steps: 1}
  - {name: math_pairs, kind: pairs, data: {path: @/math/train_prompts_zh.jsonl}, grader: {plugin: math}, sampling: {n: 2, max_new_tokens: 8}}
  - {name: poem_pairs, kind: pairs, data: {path: @/poem/train_prompts.jsonl}, grader: {plugin: poem}, sampling: {n: 2, max_new_tokens: 8}}
  - {name: slogan_pairs, kind: pairs, data: {path: @/slogan/prompts.jsonl}, grader: {plugin: slogan}, sampling: {n: 2, max_new_tokens: 8}}
  - name: dpo
    kind: pairwise
    loss: {plugin: dpo, beta: 0.1}
    data: {path: @/math/pairs_zh.jsonl, max_length: 512}
    optimizer: {name: adamw, lr: 1.0e-4}
    batch_size: 4
    steps: 1
    eval: {prompts: @/math/prompts.jsonl, grader: math, sampling: {n: 1, max_new_tokens: 8}, path: @/math/pairs.jsonl, every: 1}
)";
  for (size_t at; (at = yaml.find('@')) != std::string::npos;) yaml.replace(at, 1, kSource + "/configs/lm");
  const std::string dir = make_temp_dir("lm-tasks-validate");
  const std::string config = prefengine::testing::write_file(dir + "/tasks.yaml", yaml);
  const CommandResult r = run_shell(std::string(PREFENGINE_CLI) + " validate " + config + " 2>&1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ok (9 stages)"), std::string::npos) << r.output;
  for (const std::string line :
       {"math/sft.jsonl (prompt_completion format): 3000 rows, 3000 records",
        "math/sft_zh.jsonl (prompt_completion format): 2000 rows, 2000 records",
        "poem/corpus.jsonl (text format): 370 rows, 370 records",
        "slogan/sft.jsonl (prompt_completion format): 1176 rows, 1176 records",
        "math/pairs_zh.jsonl (standard format): 400 rows, 400 records"}) {
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  }
  // Nothing skipped: every "N skipped" count is 0.
  for (size_t at = r.output.find(" skipped"); at != std::string::npos; at = r.output.find(" skipped", at + 1)) {
    EXPECT_EQ(r.output.substr(at - 2, 2), " 0") << r.output;
  }
}

}  // namespace
