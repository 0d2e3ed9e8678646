#pragma once
// Symbolic comparison of two normalised answers with the GiNaC computer-algebra library: exact
// arithmetic on integers and rationals of any size, and algebraic simplification of expressions
// in one-letter variables ((x+1)^2 vs x^2+2x+1, \frac{x^2-1}{x-1} vs x+1). Each comparison runs
// under a size budget (checked before GiNaC sees the input: length, digits, exponents, factorial
// arguments) and a time budget (checked between GiNaC's steps; a step is never interrupted, the
// size budget keeps each one short). GiNaC is not thread-safe: calls are serialised by a mutex.
#include <cstddef>
#include <string_view>

namespace prefengine::plugins::graders {

struct SymbolicBudget {
  size_t max_chars = 400;     // an answer longer than this (bytes, normalised) is not parsed
  double max_millis = 50;     // no further GiNaC step starts after this much CPU time of the
                              // comparing thread (thread_cpu_millis) per comparison
  void validate() const;      // throws std::invalid_argument naming the field
};

// The calling thread's CPU time in milliseconds (CLOCK_THREAD_CPUTIME_ID): the budget's clock. It
// counts the comparison's own work, not time the thread waits to be scheduled, so a loaded machine
// does not turn a right answer into "unknown" (a wall-clock budget did, under ctest -j2).
double thread_cpu_millis();

enum class SymbolicVerdict {
  kEqual,      // a - b simplifies to zero
  kDifferent,  // a - b is a nonzero rational number, or a nonzero rational function
  kUnknown,    // not parsed, over budget, or GiNaC could not decide (sin^2+cos^2 vs 1)
};

// Compares two normalised answers (see normalize_answer) as values.
SymbolicVerdict symbolic_compare(std::string_view a, std::string_view b,
                                 const SymbolicBudget& budget = {});

// Compares two equations "L1=R1" and "L2=R2" (normalised, one '=' each): equal when L1-R1 is a
// nonzero constant multiple of L2-R2 (y=2x+3 vs 2x-y+3=0); kDifferent when the quotient
// simplifies to a non-constant rational function.
SymbolicVerdict symbolic_compare_equations(std::string_view a, std::string_view b,
                                           const SymbolicBudget& budget = {});

}  // namespace prefengine::plugins::graders
