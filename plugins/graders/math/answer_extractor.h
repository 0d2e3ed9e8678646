#pragma once
// Finding the final answer in a model's solution to a math problem.
#include <optional>
#include <string>
#include <string_view>

namespace prefengine::plugins::graders {

// The argument of the last \boxed{...} or \fbox{...} in `text` (braces may nest), or of the
// unbraced form "\boxed 5"; nullopt when there is none or its braces never close.
std::optional<std::string> extract_boxed(std::string_view text);

// The final answer of a solution, trying in order: the last \boxed/\fbox; the text after the
// last "Final Answer:", "final answer is", "The answer is", "Answer:", "答案是", "答案为", "答："
// or GSM8K's "####" (up to the end of the line or of the sentence, inside $...$ when it starts
// with one); the last number in the text (integers, decimals, thousands separators, a/b; a whole
// \frac{a}{b} when the number sits in one). nullopt when none of these is found.
std::optional<std::string> extract_final_answer(std::string_view text);

// Only the marked forms: the last \boxed/\fbox, else the text after an answer phrase; nullopt
// when there is neither. For reference answers, which are often the bare answer ("\frac{1}{2}",
// "(1, 2)") and must not be cut down to their last number.
std::optional<std::string> extract_marked_answer(std::string_view text);

}  // namespace prefengine::plugins::graders
