#pragma once
// The Jinja2 parser: tokens of lexer.h -> the syntax tree of ast.h. Supports output, if/elif/else,
// for (tuple targets, `if` filter, else, loop controls), set (names, tuples, ns.attr, block set),
// macro, and Jinja's expression grammar (conditional expressions, or/and/not, chained
// comparisons and `in`, + - ~ * / // % **, filters, tests, calls, attributes, subscripts, slices,
// list/tuple/dict literals).
#include <string>

#include "engine/data/jinja/ast.h"

namespace prefengine::jinja {

// Throws TemplateError "NAME:LINE: ..." for a syntax error, an unclosed block, an unknown tag,
// filter or test.
Body parse(const std::string& source, const std::string& name);

// The filters and tests the evaluator implements.
bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

}  // namespace prefengine::jinja
