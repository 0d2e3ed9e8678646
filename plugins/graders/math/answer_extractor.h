#pragma once
// Finding the final answer in a model's solution to a math problem.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefengine::plugins::graders {

// The argument of the last \boxed{...} or \fbox{...} in `text` (braces may nest), or of the
// unbraced form "\boxed 5"; nullopt when there is none or its braces never close.
std::optional<std::string> extract_boxed(std::string_view text);

// What a solution gives as its final answer.
struct ExtractedAnswer {
  std::optional<std::string> answer;    // the final answer; nullopt when there is none
  bool ambiguous = false;               // several different final answers offered as
                                        // alternatives ("\boxed{3} or \boxed{4}", "either 3 or 4")
  std::vector<std::string> candidates;  // the alternatives, when ambiguous
};

// The final answer of a solution, as extract_final_answer finds it, with hedging detected:
//   - boxes next to each other (only spaces, $, commas, "and", 和, 、 between them) form one
//     multi-part answer, read together as a list ("\boxed{3} and \boxed{5}" -> "3, 5"); joined
//     by "or", 或 or 还是 they are alternatives, and the answer is ambiguous;
//   - an answer phrase followed by "either 3 or 4", "3 or 4", "3 或 4" is ambiguous;
//   - an ambiguous answer is the list of its alternatives ("3, 4"): equal to a reference that is
//     that list (both roots of a quadratic), never to a single value, so a hedge cannot win;
//   - the last number of an unmarked text joined by "or" to another number is no answer;
//   - "the answer is not 12; it is 15" gives 15, "15, not 12" gives 15;
//   - full-width digits and punctuation are folded first; 答案是/答案为/答案：/答：/最终答案/
//     结果是 mark an answer, and a measure word after it (18 个) is left to the normaliser.
ExtractedAnswer extract_answer(std::string_view text);

// The final answer of a solution (extract_answer's `answer`), trying in order: the last
// \boxed/\fbox group; the text after the last "Final Answer:", "final answer is", "The answer
// is", "Answer:", "答案是", "答案为", "答：" or GSM8K's "####" (up to the end of the line or of
// the sentence, inside $...$ when it starts with one); the last number in the text (integers,
// decimals, thousands separators, a/b; a whole \frac{a}{b} when the number sits in one). nullopt
// when none of these is found.
std::optional<std::string> extract_final_answer(std::string_view text);

// Only the marked forms: the last \boxed/\fbox, else the text after an answer phrase; nullopt
// when there is neither. For reference answers, which are often the bare answer ("\frac{1}{2}",
// "(1, 2)") and must not be cut down to their last number.
std::optional<std::string> extract_marked_answer(std::string_view text);

}  // namespace prefengine::plugins::graders
