#pragma once
// Internal to the Jinja2 evaluator (template.cpp, operators.cpp, filters.cpp): Python's semantics
// for a template's operators (attributes, subscripts, slices, comparisons, `in`, arithmetic) and
// the helpers the evaluator and the filters share.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/data/jinja/value.h"

namespace prefengine::jinja {

// An error without a template position yet: the evaluator adds "NAME:LINE: ".
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void error(const std::string& what) { throw EvalError(what); }

std::string undefined_message(const Value& v);

// Python's slice.indices(): the selected positions.
std::vector<int64_t> slice_positions(int64_t size, const Value& start, const Value& stop, const Value& step);

// The items a for loop or list() sees.
List iterate(const Value& v);

// The argument `name`, or else the positional one at `index`, or else `fallback`.
Value arg(const CallArgs& a, size_t index, const std::string& name, const Value& fallback);
std::string need_string(const Value& v, const std::string& what);

// obj.name and obj[key].
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);

// a < b, `item in container`, and a OP b for + - * / // % **.
bool less_than(const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
Value arithmetic(const std::string& op, const Value& a, const Value& b);

}  // namespace prefengine::jinja
