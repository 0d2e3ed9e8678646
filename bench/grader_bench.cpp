// Records graded per second for the math, poem and slogan graders, on a small mix of typical
// records (good and bad) cycled for about a second each. Usage: grader_bench [seconds]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "math/math_grader.h"
#include "poem/poem_grader.h"
#include "slogan/slogan_grader.h"

namespace g = prefengine::plugins::graders;
using prefengine::GradeInput;

namespace {

double records_per_second(const prefengine::Grader& grader, const std::vector<GradeInput>& inputs,
                          double seconds) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  size_t done = 0;
  double sink = 0;
  while (true) {
    for (const auto& in : inputs) sink += grader.grade(in).score;
    done += inputs.size();
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    if (elapsed >= seconds) {
      if (sink < 0) std::printf("impossible\n");
      return done / elapsed;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  std::string long_solution;
  for (int i = 1; i <= 40; ++i) {
    long_solution += "Step " + std::to_string(i) + ": " + std::to_string(i) + " * 3 = " +
                     std::to_string(3 * i) + ", and adding \\frac{1}{2} gives more. ";
  }
  long_solution += "So the answer is \\boxed{\\frac{3}{2}}.";
  const std::vector<GradeInput> math = {
      {"What is 15+3?", "We add: 15 + 3 = 18, so the answer is \\boxed{18}.", std::string("18")},
      {"Solve", "x = 2 or x = 3, so the roots are \\boxed{\\{2, 3\\}}", std::string("\\{3,2\\}")},
      {"Area?", "The area is $\\pi r^2 = 4\\pi$. Final Answer: The final answer is $4\\pi$.",
       std::string("12.566370614359172")},
      {"Interval?", "\\boxed{(-\\infty, 3]}", std::string("(-\\infty,3]")},
      {"Long", long_solution, std::string("1.5")},
      {"Wrong", "I think 2 + 2 = 5 so it is 5", std::string("4")}};
  const std::vector<GradeInput> poem = {
      {"写一首五言绝句，题为《登鹳雀楼》", "《登鹳雀楼》\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。",
       std::nullopt},
      {"写一首五言律诗",
       "离离原上草，一岁一枯荣。野火烧不尽，春风吹又生。远芳侵古道，晴翠接荒城。又送王孙去，萋萋满别情。",
       std::nullopt},
      {"写一首七言绝句", "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。",
       std::nullopt},
      {"写一首诗", "春天来了\n花开了，草绿了，鸟儿在唱歌。", std::nullopt}};
  const std::vector<GradeInput> slogan = {
      {"为环保产品写一条不超过10个字的广告语，必须包含“绿色”。", "绿色生活，从我做起", std::nullopt},
      {"Write a slogan within 6 words that must include \"fresh\".", "Fresh taste, every single day",
       std::nullopt},
      {"写一条口号", "最佳选择，最佳品质，第一品牌", std::nullopt}};

  const g::MathGrader math_grader{g::MathGraderOptions{}};
  const auto load_start = std::chrono::steady_clock::now();
  const g::PoemGrader poem_grader{g::PoemGraderOptions{}};
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const g::SloganGrader slogan_grader{g::SloganGraderOptions{}};

  std::printf("grader   records/s   (mix of %zu/%zu/%zu records, %.1f s each)\n", math.size(),
              poem.size(), slogan.size(), seconds);
  std::printf("math     %10.0f\n", records_per_second(math_grader, math, seconds));
  std::printf("poem     %10.0f   (Unihan table loaded once in %.2f s)\n",
              records_per_second(poem_grader, poem, seconds), load_s);
  std::printf("slogan   %10.0f\n", records_per_second(slogan_grader, slogan, seconds));
  return 0;
}
