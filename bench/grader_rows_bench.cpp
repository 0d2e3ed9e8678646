// Realistic rows graded per second, on one thread and on two, for `prefengine grade` and for
// rewards: the hand-labelled evaluation set (tests/data/graders/eval_*.jsonl: 158 math answers of
// every kind, symbolic ones included, 40 poems with titles, authors and chat text, 30 slogans),
// each math response given a paragraph of typical working first (about 700 bytes with six
// checkable equations), mixed 60% math, 25% poems, 15% slogans as a reward batch would be.
// Usage: grader_rows_bench [seconds=3] [source_dir=.]   Prints rows/s.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "math/math_grader.h"
#include "poem/poem_grader.h"
#include "slogan/slogan_grader.h"

namespace g = prefengine::plugins::graders;
using prefengine::GradeInput;

namespace {

struct Row {
  const prefengine::Grader* grader;
  GradeInput input;
};

std::vector<nlohmann::json> load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot open %s (pass the source directory as the second argument)\n",
                 path.c_str());
    std::exit(2);
  }
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// Grades rows [begin, end) of `rows` cyclically until `seconds` pass; returns rows graded.
size_t grade_for(const std::vector<Row>& rows, size_t begin, size_t end, double seconds) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  size_t done = 0;
  double sink = 0;
  while (std::chrono::duration<double>(clock::now() - start).count() < seconds) {
    for (size_t i = begin; i < end; ++i) sink += rows[i].grader->grade(rows[i].input).score;
    done += end - begin;
  }
  if (sink < -1) std::printf("impossible\n");
  return done;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const std::string source = argc > 2 ? argv[2] : ".";
  const std::string data = source + "/tests/data/graders/";
  const g::MathGrader math{g::MathGraderOptions{}};
  const g::PoemGrader poem{g::PoemGraderOptions{}};
  const g::SloganGrader slogan{g::SloganGraderOptions{}};

  const std::string working =
      "Let me work through this step by step. First, we note that 12 + 30 = 42, and dividing "
      "by 6 gives 42 / 6 = 7. Next, squaring, 7^2 = 49, and 49 - 4 = 45. Checking the other "
      "condition: 3 \\times 15 = 45, which matches. We also have $\\frac{1}{2} + \\frac{1}{4} = "
      "0.75$ for the second part, and 0.75 * 4 = 3. Putting it together, the quantity we want "
      "follows from the relations above; substituting back confirms it. ";
  std::vector<Row> math_rows, poem_rows, slogan_rows;
  for (const auto& r : load(data + "eval_math.jsonl")) {
    const std::string response = r["response"];
    math_rows.push_back({&math, {"Solve the problem.", response.empty() ? response : working + response,
                                 r["reference"].get<std::string>()}});
  }
  for (const auto& r : load(data + "eval_poem.jsonl")) {
    poem_rows.push_back({&poem, {r["prompt"], r["response"], std::nullopt}});
  }
  for (const auto& r : load(data + "eval_slogan.jsonl")) {
    slogan_rows.push_back({&slogan, {r["prompt"], r["response"], std::nullopt}});
  }
  // A batch of 400 rows: 240 math, 100 poems, 60 slogans, interleaved.
  std::vector<Row> mix;
  for (size_t i = 0; i < 400; ++i) {
    const size_t k = i % 20;
    if (k < 12) {
      mix.push_back(math_rows[(i * 7) % math_rows.size()]);
    } else if (k < 17) {
      mix.push_back(poem_rows[(i * 3) % poem_rows.size()]);
    } else {
      mix.push_back(slogan_rows[i % slogan_rows.size()]);
    }
  }
  std::printf("rows: %zu math, %zu poems, %zu slogans; mixed batch of %zu; %.1f s per figure\n",
              math_rows.size(), poem_rows.size(), slogan_rows.size(), mix.size(), seconds);
  for (const auto& [name, rows] : {std::pair<const char*, const std::vector<Row>*>{"math", &math_rows},
                                   {"poem", &poem_rows}, {"slogan", &slogan_rows}, {"mixed", &mix}}) {
    const auto start = std::chrono::steady_clock::now();
    const size_t done = grade_for(*rows, 0, rows->size(), seconds);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%-7s 1 thread   %10.0f rows/s\n", name, done / elapsed);
  }
  // Two threads share the graders (as a reward would), each grading half of the mixed batch.
  std::atomic<size_t> total{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] { total += grade_for(mix, t * mix.size() / 2, (t + 1) * mix.size() / 2, seconds); });
  }
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("mixed   2 threads  %10.0f rows/s\n", total.load() / elapsed);
  return 0;
}
