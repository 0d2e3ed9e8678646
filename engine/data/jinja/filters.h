#pragma once
// Internal to the Jinja2 evaluator: the built-in filters and tests (the names parser.h's
// is_known_filter and is_known_test accept), and the methods of str and dict values. Bad
// arguments are EvalErrors (operators.h).
#include <string>

#include "engine/data/jinja/value.h"

namespace prefengine::jinja {

// A bound method of a string, or an undefined value when there is none of that name.
Value string_method(const std::string& s, const std::string& name);
// A bound method of a dict (items, keys, values, get), or an undefined value.
Value dict_method(const Value& d, const std::string& name);

// value | name(args) and value is name(args).
Value apply_filter(const std::string& name, const Value& v, const CallArgs& a);
bool apply_test(const std::string& name, const Value& v, const CallArgs& a);

}  // namespace prefengine::jinja
