// Python's semantics for a template's operators: attribute and item access, slices, comparisons,
// `in` and arithmetic, and the helpers the evaluator (template.cpp) and the filters (filters.cpp)
// share.
#include "engine/data/jinja/operators.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/data/jinja/filters.h"

namespace prefengine::jinja {

std::string undefined_message(const Value& v) {
  const std::string& name = v.undefined_name();
  return name.empty() ? "a value is undefined" : name;
}

namespace {

// Python's index normalisation; returns false when out of range.
bool normalize_index(int64_t size, int64_t* i) {
  if (*i < 0) *i += size;
  return *i >= 0 && *i < size;
}

}  // namespace

// Python's slice.indices(): the selected positions.
std::vector<int64_t> slice_positions(int64_t size, const Value& start, const Value& stop, const Value& step) {
  auto as_index = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) error(std::string("slice ") + what + " must be an integer, got " + v.type_name());
    return v.as_int();
  };
  const int64_t st = as_index(step, "step").value_or(1);
  if (st == 0) error("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) {
      x += size;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= size) {
      x = st < 0 ? size - 1 : size;
    }
    return x;
  };
  const int64_t b = clamp(as_index(start, "start"), st < 0 ? size - 1 : 0);
  const int64_t e = clamp(as_index(stop, "stop"), st < 0 ? -1 : size);
  std::vector<int64_t> out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(i);
  return out;
}

// The items a for loop or list() sees.
List iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined:
      return {};
    case Value::Type::kList:
      return v.as_list();
    case Value::Type::kDict: {
      if (v.is_namespace()) error("'Namespace' object is not iterable");
      List keys;
      for (const auto& [k, x] : v.as_dict()) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Type::kString: {
      List chars;
      for (char32_t cp : utf8_decode(v.as_string())) {
        std::string s;
        utf8_append(cp, &s);
        chars.push_back(Value::string(s));
      }
      return chars;
    }
    default:
      error("'" + v.type_name() + "' object is not iterable");
  }
}

Value arg(const CallArgs& a, size_t index, const std::string& name, const Value& fallback) {
  for (const auto& [k, v] : a.named) {
    if (k == name) return v;
  }
  return index < a.positional.size() ? a.positional[index] : fallback;
}

std::string need_string(const Value& v, const std::string& what) {
  if (!v.is_string()) error(what + " must be a string, got " + v.type_name());
  return v.as_string();
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.type()) {
    case Value::Type::kUndefined:
      error(undefined_message(obj));
    case Value::Type::kDict: {
      if (!obj.is_namespace()) {
        Value m = dict_method(obj, name);
        if (!m.is_undefined()) return m;
      }
      const Value* v = obj.find(name);
      if (v != nullptr) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Value::Type::kString:
      return string_method(obj.as_string(), name);
    default:
      return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.type()) {
    case Value::Type::kUndefined:
      error(undefined_message(obj));
    case Value::Type::kDict: {
      if (key.is_string()) {
        const Value* v = obj.find(key.as_string());
        if (v != nullptr) return *v;
        return Value::undefined("'dict object' has no attribute '" + key.as_string() + "'");
      }
      return Value::undefined("'dict object' has no attribute " + key.repr());
    }
    case Value::Type::kList:
    case Value::Type::kString: {
      if (key.is_string()) return get_attr(obj, key.as_string());
      if (!key.is_int() && !key.is_bool()) error(obj.type_name() + " indices must be integers, not " + key.type_name());
      int64_t i = key.as_int();
      if (obj.is_list()) {
        if (!normalize_index(static_cast<int64_t>(obj.as_list().size()), &i)) {
          return Value::undefined(obj.type_name() + " object has no element " + std::to_string(key.as_int()));
        }
        return obj.as_list()[static_cast<size_t>(i)];
      }
      const std::vector<char32_t> cps = utf8_decode(obj.as_string());
      if (!normalize_index(static_cast<int64_t>(cps.size()), &i)) {
        return Value::undefined("str object has no element " + std::to_string(key.as_int()));
      }
      std::string out;
      utf8_append(cps[static_cast<size_t>(i)], &out);
      return Value::string(out);
    }
    default:
      return Value::undefined("'" + obj.type_name() + " object' has no attribute " + key.repr());
  }
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {
    const List& x = a.as_list();
    const List& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!(x[i] == y[i])) return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  error("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::kString:
      if (!item.is_string()) error("'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Type::kList:
      return std::find(container.as_list().begin(), container.as_list().end(), item) != container.as_list().end();
    case Value::Type::kDict:
      return item.is_string() && container.find(item.as_string()) != nullptr;
    case Value::Type::kUndefined:
      return false;
    default:
      error("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) error(undefined_message(a));
  if (b.is_undefined()) error(undefined_message(b));
  if (a.is_number() && b.is_number()) {
    const bool ints = !a.is_float() && !b.is_float();
    if (op == "+") return ints ? Value::integer(a.as_int() + b.as_int()) : Value::number(a.as_double() + b.as_double());
    if (op == "-") return ints ? Value::integer(a.as_int() - b.as_int()) : Value::number(a.as_double() - b.as_double());
    if (op == "*") return ints ? Value::integer(a.as_int() * b.as_int()) : Value::number(a.as_double() * b.as_double());
    if (op == "/") {
      if (b.as_double() == 0) error("division by zero");
      return Value::number(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (b.as_double() == 0) error(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
      if (ints) {
        const int64_t x = a.as_int();
        const int64_t y = b.as_int();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return op == "//" ? Value::integer(q) : Value::integer(x - q * y);
      }
      const double q = std::floor(a.as_double() / b.as_double());
      return op == "//" ? Value::number(q) : Value::number(a.as_double() - q * b.as_double());
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        if (b.as_int() > 62 && std::llabs(a.as_int()) > 1) error("integer power too large");
        int64_t r = 1;
        for (int64_t i = 0; i < std::min<int64_t>(b.as_int(), 63); ++i) r *= a.as_int();
        if (b.as_int() > 63 && a.as_int() == -1) r = b.as_int() % 2 == 0 ? 1 : -1;
        return Value::integer(r);
      }
      return Value::number(std::pow(a.as_double(), b.as_double()));
    }
  }
  if (op == "+" && a.is_string() && b.is_string()) return Value::string(a.as_string() + b.as_string());
  if (op == "+" && a.is_list() && b.is_list()) {
    List out = a.as_list();
    out.insert(out.end(), b.as_list().begin(), b.as_list().end());
    return Value::list(std::move(out));
  }
  if (op == "*" && (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
    const int64_t unit = a.is_string() ? static_cast<int64_t>(a.as_string().size()) : static_cast<int64_t>(a.as_list().size());
    if (b.as_int() > 0 && unit > 0 && b.as_int() > (int64_t{1} << 24) / unit) error("repetition result too large");
    if (a.is_string()) {
      std::string out;
      for (int64_t i = 0; i < b.as_int(); ++i) out += a.as_string();
      return Value::string(out);
    }
    List out;
    for (int64_t i = 0; i < b.as_int(); ++i) out.insert(out.end(), a.as_list().begin(), a.as_list().end());
    return Value::list(std::move(out));
  }
  if (op == "*" && (b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return arithmetic(op, b, a);
  error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

}  // namespace prefengine::jinja
