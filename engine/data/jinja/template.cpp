// The Jinja2 evaluator: walks the syntax tree of parser.h with Python's semantics for the values
// of value.h.
#include "engine/data/jinja/template.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "engine/data/jinja/ast.h"
#include "engine/data/jinja/parser.h"

namespace prefengine::jinja {
namespace {

// An error without a template position yet: the evaluator adds "NAME:LINE: ".
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void error(const std::string& what) { throw EvalError(what); }

std::string undefined_message(const Value& v) {
  const std::string& name = v.undefined_name();
  return name.empty() ? "a value is undefined" : name;
}

// Python's index normalisation; returns false when out of range.
bool normalize_index(int64_t size, int64_t* i) {
  if (*i < 0) *i += size;
  return *i >= 0 && *i < size;
}

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

int64_t length_of(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return 0;
    case Value::Type::kString: return static_cast<int64_t>(utf8_decode(v.as_string()).size());
    case Value::Type::kList: return static_cast<int64_t>(v.as_list().size());
    case Value::Type::kDict: return static_cast<int64_t>(v.as_dict().size());
    default: error("object of type '" + v.type_name() + "' has no len()");
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

// Python str.strip / lstrip / rstrip: chars none = whitespace.
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::vector<char32_t> cps = utf8_decode(s);
  std::vector<char32_t> set;
  const bool ws = chars.is_undefined() || chars.is_none();
  if (!ws) set = utf8_decode(need_string(chars, "strip's argument"));
  auto strip_it = [&](char32_t c) {
    return ws ? python_isspace(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0;
  size_t e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  return utf8_encode({cps.begin() + static_cast<std::ptrdiff_t>(b), cps.begin() + static_cast<std::ptrdiff_t>(e)});
}

std::string ascii_case(std::string s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize
  bool prev_letter = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char& c = s[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool up = mode == 1 || (mode == 2 && letter && !prev_letter) || (mode == 3 && i == 0);
    if (up) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (mode == 2) prev_letter = letter || (static_cast<unsigned char>(c) >= 0x80 && prev_letter);
  }
  return s;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {
    std::string out;
    int64_t n = 0;
    for (char32_t cp : utf8_decode(s)) {
      if (count < 0 || n++ < count) out += to;
      utf8_append(cp, &out);
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  std::string out;
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out += s.substr(pos, at - pos) + to;
    pos = at + from.size();
    ++n;
  }
  return out + s.substr(pos);
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_undefined() || sep.is_none()) {
    const std::vector<char32_t> cps = utf8_decode(s);
    size_t i = 0;
    while (true) {
      while (i < cps.size() && python_isspace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = cps.size();
        while (e > i && python_isspace(cps[e - 1])) --e;
        out.push_back(Value::string(utf8_encode({cps.begin() + static_cast<std::ptrdiff_t>(i),
                                                 cps.begin() + static_cast<std::ptrdiff_t>(e)})));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !python_isspace(cps[j])) ++j;
      out.push_back(Value::string(utf8_encode({cps.begin() + static_cast<std::ptrdiff_t>(i),
                                               cps.begin() + static_cast<std::ptrdiff_t>(j)})));
      i = j;
    }
    return Value::list(std::move(out));
  }
  const std::string d = need_string(sep, "split's separator");
  if (d.empty()) error("empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    const size_t at = s.find(d, pos);
    if (at == std::string::npos) break;
    out.push_back(Value::string(s.substr(pos, at - pos)));
    pos = at + d.size();
  }
  out.push_back(Value::string(s.substr(pos)));
  return Value::list(std::move(out));
}

bool starts_or_ends(const std::string& s, const Value& affix, bool start) {
  auto one = [&](const Value& a) {
    const std::string x = need_string(a, start ? "startswith's argument" : "endswith's argument");
    if (x.size() > s.size()) return false;
    return start ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_list()) {
    for (const auto& a : affix.as_list()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

int64_t as_count(const Value& v, int64_t fallback) {
  if (v.is_undefined() || v.is_none()) return fallback;
  if (!v.is_int()) error("an integer count is expected, got " + v.type_name());
  return v.as_int();
}

// A bound method of a string, or an undefined value when there is none of that name.
Value string_method(const std::string& s, const std::string& name) {
  static const Value kNone = Value::none();
  auto bind = [](std::function<Value(const CallArgs&)> f) { return Value::function(std::move(f)); };
  if (name == "startswith" || name == "endswith") {
    const bool start = name == "startswith";
    return bind([s, start](const CallArgs& a) { return Value::boolean(starts_or_ends(s, arg(a, 0, "prefix", Value()), start)); });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool l = name != "rstrip";
    const bool r = name != "lstrip";
    return bind([s, l, r](const CallArgs& a) { return Value::string(strip(s, arg(a, 0, "chars", kNone), l, r)); });
  }
  if (name == "split") {
    return bind([s](const CallArgs& a) {
      return split(s, arg(a, 0, "sep", kNone), as_count(arg(a, 1, "maxsplit", kNone), -1));
    });
  }
  if (name == "replace") {
    return bind([s](const CallArgs& a) {
      return Value::string(replace_all(s, need_string(arg(a, 0, "old", Value()), "replace's old"),
                                       need_string(arg(a, 1, "new", Value()), "replace's new"),
                                       as_count(arg(a, 2, "count", kNone), -1)));
    });
  }
  const int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : name == "capitalize" ? 3 : -1;
  if (mode >= 0) return bind([s, mode](const CallArgs&) { return Value::string(ascii_case(s, mode)); });
  if (name == "join") {
    return bind([s](const CallArgs& a) {
      std::string out;
      bool first = true;
      for (const auto& item : iterate(arg(a, 0, "iterable", Value()))) {
        if (!first) out += s;
        first = false;
        out += need_string(item, "join's items");
      }
      return Value::string(out);
    });
  }
  if (name == "find" || name == "count") {
    const bool find = name == "find";
    return bind([s, find](const CallArgs& a) {
      const std::string x = need_string(arg(a, 0, "sub", Value()), find ? "find's argument" : "count's argument");
      if (find) {
        const size_t at = s.find(x);
        return Value::integer(at == std::string::npos ? -1 : static_cast<int64_t>(utf8_decode(s.substr(0, at)).size()));
      }
      if (x.empty()) return Value::integer(static_cast<int64_t>(utf8_decode(s).size()) + 1);
      int64_t n = 0;
      for (size_t at = s.find(x); at != std::string::npos; at = s.find(x, at + x.size())) ++n;
      return Value::integer(n);
    });
  }
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& d, const std::string& name) {
  if (name == "items") {
    return Value::function([d](const CallArgs&) {
      List out;
      for (const auto& [k, v] : d.as_dict()) out.push_back(Value::tuple({Value::string(k), v}));
      return Value::list(std::move(out));
    });
  }
  if (name == "keys" || name == "values") {
    const bool keys = name == "keys";
    return Value::function([d, keys](const CallArgs&) {
      List out;
      for (const auto& [k, v] : d.as_dict()) out.push_back(keys ? Value::string(k) : v);
      return Value::list(std::move(out));
    });
  }
  if (name == "get") {
    return Value::function([d](const CallArgs& a) {
      const Value key = arg(a, 0, "key", Value());
      const Value* v = key.is_string() ? d.find(key.as_string()) : nullptr;
      return v != nullptr ? *v : arg(a, 1, "default", Value::none());
    });
  }
  return Value::undefined();
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

bool apply_test(const std::string& name, const Value& v, const CallArgs& a);
Value apply_filter(const std::string& name, const Value& v, const CallArgs& a);

// item.attr for select/map filters; a dotted attribute ("a.b") walks down.
Value attribute_of(const Value& item, const std::string& attribute) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = attribute.find('.', start);
    v = get_item(v, Value::string(attribute.substr(start, dot == std::string::npos ? std::string::npos : dot - start)));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

// select / reject / selectattr / rejectattr: the items whose (attribute's) test passes, or fails.
Value select_items(const std::string& name, const Value& v, const CallArgs& a) {
  const bool by_attribute = name == "selectattr" || name == "rejectattr";
  const bool keep_if = name == "select" || name == "selectattr";
  size_t next = 0;
  std::string attribute;
  if (by_attribute) {
    if (a.positional.empty()) error(name + " needs an attribute name");
    attribute = need_string(a.positional[next++], name + "'s attribute");
  }
  std::string test;
  if (next < a.positional.size()) test = need_string(a.positional[next++], name + "'s test name");
  if (!test.empty() && !is_known_test(test)) error(name + ": unknown test '" + test + "'");
  CallArgs test_args;
  test_args.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(next), a.positional.end());
  List out;
  for (const auto& item : iterate(v)) {
    const Value x = by_attribute ? attribute_of(item, attribute) : item;
    const bool pass = test.empty() ? x.truthy() : apply_test(test, x, test_args);
    if (pass == keep_if) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  static const Value kNone = Value::none();
  auto str_arg = [&]() {
    if (v.is_undefined()) return std::string();
    return v.str();
  };
  if (name == "trim") return Value::string(strip(str_arg(), arg(a, 0, "chars", kNone), true, true));
  if (name == "tojson") {
    if (arg(a, 0, "ensure_ascii", Value::boolean(false)).truthy() || !arg(a, 2, "separators", kNone).is_none()) {
      error("tojson: ensure_ascii=True and separators are not supported");
    }
    const Value indent = arg(a, 1, "indent", kNone);
    if (!indent.is_none() && !indent.is_int()) error("tojson's indent must be an integer");
    if (v.is_undefined()) error(undefined_message(v));
    return Value::string(v.to_json(indent.is_none() ? -1 : static_cast<int>(indent.as_int()),
                                   arg(a, 3, "sort_keys", Value::boolean(false)).truthy()));
  }
  if (name == "length" || name == "count") return Value::integer(length_of(v));
  if (name == "upper") return Value::string(ascii_case(str_arg(), 1));
  if (name == "lower") return Value::string(ascii_case(str_arg(), 0));
  if (name == "title") return Value::string(ascii_case(str_arg(), 2));
  if (name == "capitalize") return Value::string(ascii_case(str_arg(), 3));
  if (name == "string") return Value::string(str_arg());
  if (name == "safe") return v;
  if (name == "replace") {
    return Value::string(replace_all(str_arg(), arg(a, 0, "old", Value()).str(), arg(a, 1, "new", Value()).str(),
                                     as_count(arg(a, 2, "count", kNone), -1)));
  }
  if (name == "join") {
    const Value attribute = arg(a, 1, "attribute", kNone);
    std::string out;
    bool first = true;
    for (const auto& item : iterate(v)) {
      if (!first) out += arg(a, 0, "d", Value::string("")).str();
      first = false;
      out += (attribute.is_none() ? item : get_item(item, attribute)).str();
    }
    return Value::string(out);
  }
  if (name == "list") return Value::list(iterate(v));
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") return select_items(name, v, a);
  if (name == "map") {
    List out;
    const Value attribute = arg(a, 99, "attribute", kNone);
    if (!attribute.is_none()) {
      const Value fallback = arg(a, 99, "default", Value());
      for (const auto& item : iterate(v)) {
        Value x = attribute_of(item, attribute.str());
        out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
      }
      return Value::list(std::move(out));
    }
    if (a.positional.empty()) error("map needs a filter name or attribute=");
    const std::string filter = need_string(a.positional[0], "map's filter name");
    if (!is_known_filter(filter) || filter == "map") error("map: unknown filter '" + filter + "'");
    CallArgs rest;
    rest.positional.assign(a.positional.begin() + 1, a.positional.end());
    rest.named = a.named;
    for (const auto& item : iterate(v)) out.push_back(apply_filter(filter, item, rest));
    return Value::list(std::move(out));
  }
  if (name == "first" || name == "last") {
    if (v.is_undefined()) error(undefined_message(v));
    const List items = iterate(v);
    if (items.empty()) return Value::undefined("no " + name + " item, sequence was empty");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "default" || name == "d") {
    const bool boolean = arg(a, 1, "boolean", Value::boolean(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return arg(a, 0, "default_value", Value::string(""));
    return v;
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) error("items filter: expected a mapping, got " + v.type_name());
    List out;
    for (const auto& [k, x] : v.as_dict()) out.push_back(Value::tuple({Value::string(k), x}));
    return Value::list(std::move(out));
  }
  if (name == "int" || name == "float") {
    const bool to_int = name == "int";
    const Value fallback = arg(a, 0, "default", to_int ? Value::integer(0) : Value::number(0.0));
    if (v.is_number()) return to_int ? Value::integer(v.is_float() ? static_cast<int64_t>(v.as_double()) : v.as_int())
                                     : Value::number(v.as_double());
    if (v.is_string()) {
      const std::string s = strip(v.as_string(), kNone, true, true);
      try {
        size_t used = 0;
        if (to_int) {
          const int64_t i = std::stoll(s, &used, 10);
          if (used == s.size()) return Value::integer(i);
        }
        const double d = std::stod(s, &used);
        if (used == s.size()) return to_int ? Value::integer(static_cast<int64_t>(d)) : Value::number(d);
      } catch (const std::exception&) {
      }
    }
    return fallback;
  }
  if (name == "abs") {
    if (v.is_float()) return Value::number(std::fabs(v.as_double()));
    if (v.is_number()) return Value::integer(std::llabs(v.as_int()));
    error("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<char32_t> cps = utf8_decode(v.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value::string(utf8_encode(cps));
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  error("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  const Value other = arg(a, 0, "other", Value());
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.is_namespace();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "callable") return v.is_function();
  if (name == "equalto" || name == "eq") return v == other;
  if (name == "ne") return v != other;
  if (name == "sameas") {
    if (v.type() != other.type()) return false;
    if (v.is_none() || v.is_undefined()) return v.is_none() == other.is_none();
    if (v.is_bool() || v.is_int()) return v.as_int() == other.as_int();
    return v == other;  // values without identity here
  }
  if (name == "in") return contains(other, v);
  if (name == "lt") return less_than(v, other);
  if (name == "gt") return less_than(other, v);
  if (name == "le") return !less_than(other, v);
  if (name == "ge") return !less_than(v, other);
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) error("test '" + name + "' needs an integer, got " + v.type_name());
    if (name == "divisibleby") {
      if ((!other.is_int() && !other.is_bool()) || other.as_int() == 0) error("divisibleby needs a non-zero integer");
      return v.as_int() % other.as_int() == 0;
    }
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    const std::string& s = v.as_string();
    bool cased = false;
    for (char c : s) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) cased = true;
      if (name == "lower" && c >= 'A' && c <= 'Z') return false;
      if (name == "upper" && c >= 'a' && c <= 'z') return false;
    }
    return cased;
  }
  error("unknown test '" + name + "'");
}

enum class Flow { kNormal, kBreak, kContinue };

struct RaiseException : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Evaluator {
 public:
  Evaluator(const std::string& name, const Dict& context) : name_(name) {
    frames_.emplace_back();
    auto& globals = frames_.back();
    globals["raise_exception"] = Value::function([](const CallArgs& a) -> Value {
      throw RaiseException(arg(a, 0, "message", Value::string("")).str());
    });
    globals["namespace"] = Value::function([](const CallArgs& a) {
      Dict items;
      for (const auto& p : a.positional) {
        if (!p.is_dict()) error("namespace() takes a mapping or keyword arguments, got " + p.type_name());
        for (const auto& kv : p.as_dict()) items.push_back(kv);
      }
      for (const auto& kv : a.named) items.push_back(kv);
      return Value::dict(std::move(items), true);
    });
    globals["dict"] = Value::function([](const CallArgs& a) {
      Dict items(a.named.begin(), a.named.end());
      return Value::dict(std::move(items));
    });
    globals["range"] = Value::function([](const CallArgs& a) {
      std::vector<int64_t> n;
      for (const auto& p : a.positional) {
        if (!p.is_int() && !p.is_bool()) error("range() takes integers, got " + p.type_name());
        n.push_back(p.as_int());
      }
      if (n.empty() || n.size() > 3) error("range() takes 1 to 3 arguments");
      const int64_t start = n.size() == 1 ? 0 : n[0];
      const int64_t stop = n.size() == 1 ? n[0] : n[1];
      const int64_t step = n.size() == 3 ? n[2] : 1;
      if (step == 0) error("range() arg 3 must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (out.size() >= 100000) error("range too big, 100000 items at most");
        out.push_back(Value::integer(i));
      }
      return Value::list(std::move(out));
    });
    globals["strftime_now"] = Value::function([](const CallArgs& a) {
      const std::string format = need_string(arg(a, 0, "format", Value()), "strftime_now's format");
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &tm);
      return Value::string(std::string(buf, n));
    });
    for (const auto& [k, v] : context) globals[k] = v;
    frames_.emplace_back();  // the template's own variables
  }

  std::string run(const Body& body) {
    std::string out;
    exec(body, &out);
    return out;
  }

 private:
  using Frame = std::unordered_map<std::string, Value>;

  [[noreturn]] void fail(int line, const std::string& what) const {
    throw TemplateError(name_ + ":" + std::to_string(line) + ": " + what);
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  void assign(const std::vector<std::string>& targets, const Value& v, Frame* frame, int line) {
    if (targets.size() == 1) {
      (*frame)[targets[0]] = v;
      return;
    }
    if (!v.is_list()) fail(line, "cannot unpack a " + v.type_name() + " into " + std::to_string(targets.size()) + " names");
    if (v.as_list().size() != targets.size()) {
      fail(line, "expected " + std::to_string(targets.size()) + " values to unpack, got " +
                     std::to_string(v.as_list().size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) (*frame)[targets[i]] = v.as_list()[i];
  }

  Flow exec(const Body& body, std::string* out) {
    for (const auto& node : body) {
      const Flow flow = exec_node(*node, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Flow exec_node(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::Kind::kText:
        *out += n.text;
        return Flow::kNormal;
      case Node::Kind::kOutput:
        *out += eval(*n.expr).str();
        return Flow::kNormal;
      case Node::Kind::kIf:
        for (size_t i = 0; i < n.conditions.size(); ++i) {
          if (eval(*n.conditions[i]).truthy()) return exec(n.bodies[i], out);
        }
        if (n.bodies.size() > n.conditions.size()) return exec(n.bodies.back(), out);
        return Flow::kNormal;
      case Node::Kind::kFor:
        exec_for(n, out);
        return Flow::kNormal;
      case Node::Kind::kSet: {
        Value v;
        if (n.bodies.empty()) {
          v = eval(*n.expr);
        } else {
          std::string text;
          exec(n.bodies[0], &text);
          v = Value::string(text);
        }
        if (!n.attr.empty()) {
          const Value ns = lookup(n.targets[0]);
          if (!ns.is_namespace()) fail(n.line, "cannot assign attribute on non-namespace object '" + n.targets[0] + "'");
          Dict& d = ns.as_dict();
          auto it = std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == n.attr; });
          if (it != d.end()) {
            it->second = v;
          } else {
            d.emplace_back(n.attr, v);
          }
          return Flow::kNormal;
        }
        assign(n.targets, v, &frames_.back(), n.line);
        return Flow::kNormal;
      }
      case Node::Kind::kMacro:
        frames_.back()[n.text] = make_macro(n);
        return Flow::kNormal;
      case Node::Kind::kBreak:
        return Flow::kBreak;
      case Node::Kind::kContinue:
        return Flow::kContinue;
      case Node::Kind::kBlock:
        return exec(n.bodies[0], out);
    }
    return Flow::kNormal;
  }

  void exec_for(const Node& n, std::string* out) {
    List items;
    try {
      items = iterate(eval(*n.expr));
    } catch (const EvalError& e) {
      fail(n.line, e.what());
    }
    if (n.filter) {
      List kept;
      for (const auto& item : items) {
        frames_.emplace_back();
        assign(n.targets, item, &frames_.back(), n.line);
        const bool keep = eval(*n.filter).truthy();
        frames_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const int64_t size = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < size; ++i) {
      Dict loop = {
          {"index", Value::integer(i + 1)},
          {"index0", Value::integer(i)},
          {"revindex", Value::integer(size - i)},
          {"revindex0", Value::integer(size - i - 1)},
          {"first", Value::boolean(i == 0)},
          {"last", Value::boolean(i == size - 1)},
          {"length", Value::integer(size)},
          {"depth", Value::integer(1)},
          {"depth0", Value::integer(0)},
          {"previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item")},
          {"nextitem", i + 1 < size ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item")},
          {"cycle", Value::function([i](const CallArgs& a) {
             if (a.positional.empty()) error("no items for cycling given");
             return a.positional[static_cast<size_t>(i) % a.positional.size()];
           })},
      };
      frames_.emplace_back();
      frames_.back()["loop"] = Value::dict(std::move(loop), true);
      assign(n.targets, items[static_cast<size_t>(i)], &frames_.back(), n.line);
      Flow flow;
      try {
        flow = exec(n.bodies[0], out);
      } catch (...) {
        frames_.pop_back();
        throw;
      }
      frames_.pop_back();
      if (flow == Flow::kBreak) break;
    }
    if (size == 0 && n.bodies.size() > 1) exec(n.bodies[1], out);
  }

  Value make_macro(const Node& n) {
    const Node* node = &n;
    return Value::function([this, node](const CallArgs& a) {
      if (a.positional.size() > node->targets.size()) {
        error("macro '" + node->text + "' takes " + std::to_string(node->targets.size()) + " arguments, got " +
              std::to_string(a.positional.size()));
      }
      Frame frame;
      for (size_t i = 0; i < node->targets.size(); ++i) {
        if (i < a.positional.size()) frame[node->targets[i]] = a.positional[i];
      }
      for (const auto& [k, v] : a.named) {
        if (std::find(node->targets.begin(), node->targets.end(), k) == node->targets.end()) {
          error("macro '" + node->text + "' takes no keyword argument '" + k + "'");
        }
        frame[k] = v;
      }
      std::vector<Frame> saved = std::move(frames_);
      frames_ = {saved[0], saved[1]};
      frames_.push_back(std::move(frame));
      std::string text;
      try {
        for (size_t i = 0; i < node->targets.size(); ++i) {
          if (frames_.back().count(node->targets[i]) == 0) {
            frames_.back()[node->targets[i]] =
                node->defaults[i] ? eval(*node->defaults[i])
                                  : Value::undefined("parameter '" + node->targets[i] + "' was not provided");
          }
        }
        exec(node->bodies[0], &text);
      } catch (...) {
        frames_ = std::move(saved);
        throw;
      }
      frames_ = std::move(saved);
      return Value::string(text);
    });
  }

  CallArgs eval_args(const Expr& e, size_t first) {
    CallArgs a;
    const size_t named_from = e.args.size() - e.names.size();
    for (size_t i = first; i < e.args.size(); ++i) {
      if (i < named_from) {
        a.positional.push_back(eval(*e.args[i]));
      } else {
        a.named.emplace_back(e.names[i - named_from], eval(*e.args[i]));
      }
    }
    return a;
  }

  Value eval(const Expr& e) {
    try {
      return eval_inner(e);
    } catch (const EvalError& err) {
      fail(e.line, err.what());
    } catch (const RaiseException& err) {
      fail(e.line, std::string("raise_exception: ") + err.what());
    }
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        for (const auto& x : e.args) items.push_back(eval(*x));
        return e.kind == Expr::Kind::kTuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
      }
      case Expr::Kind::kDict: {
        Dict items;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value key = eval(*e.args[i]);
          if (!key.is_string()) error("dict literal keys must be strings here, got " + key.type_name());
          Value v = eval(*e.args[i + 1]);
          auto it = std::find_if(items.begin(), items.end(), [&](const auto& kv) { return kv.first == key.as_string(); });
          if (it != items.end()) {
            it->second = v;
          } else {
            items.emplace_back(key.as_string(), v);
          }
        }
        return Value::dict(std::move(items));
      }
      case Expr::Kind::kGetAttr:
        return get_attr(eval(*e.args[0]), e.name);
      case Expr::Kind::kGetItem:
        return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::kSlice: {
        const Value obj = eval(*e.args[0]);
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[static_cast<size_t>(i) + 1]) parts[i] = eval(*e.args[static_cast<size_t>(i) + 1]);
        }
        if (obj.is_undefined()) error(undefined_message(obj));
        if (obj.is_list()) {
          List out;
          for (int64_t i : slice_positions(static_cast<int64_t>(obj.as_list().size()), parts[0], parts[1], parts[2])) {
            out.push_back(obj.as_list()[static_cast<size_t>(i)]);
          }
          return Value::list(std::move(out));
        }
        if (obj.is_string()) {
          const std::vector<char32_t> cps = utf8_decode(obj.as_string());
          std::vector<char32_t> out;
          for (int64_t i : slice_positions(static_cast<int64_t>(cps.size()), parts[0], parts[1], parts[2])) {
            out.push_back(cps[static_cast<size_t>(i)]);
          }
          return Value::string(utf8_encode(out));
        }
        error("'" + obj.type_name() + "' object is not subscriptable");
      }
      case Expr::Kind::kCall: {
        const Value callee = eval(*e.args[0]);
        if (callee.is_undefined()) error(undefined_message(callee));
        if (!callee.is_function()) error("'" + callee.type_name() + "' object is not callable");
        return callee.as_function()(eval_args(e, 1));
      }
      case Expr::Kind::kFilter:
        return apply_filter(e.name, eval(*e.args[0]), eval_args(e, 1));
      case Expr::Kind::kTest: {
        const bool r = apply_test(e.name, eval(*e.args[0]), eval_args(e, 1));
        return Value::boolean(r != e.negated);
      }
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (v.is_undefined()) error(undefined_message(v));
        if (!v.is_number()) error("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v.is_float() ? v : Value::integer(v.as_int());
        return v.is_float() ? Value::number(-v.as_double()) : Value::integer(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        if (e.name == "and" || e.name == "or") {
          Value a = eval(*e.args[0]);
          if (e.name == "and" ? !a.truthy() : a.truthy()) return a;
          return eval(*e.args[1]);
        }
        const Value a = eval(*e.args[0]);
        const Value b = eval(*e.args[1]);
        if (e.name == "~") return Value::string(a.str() + b.str());
        return arithmetic(e.name, a, b);
      }
      case Expr::Kind::kCompare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          const std::string& op = e.ops[i];
          bool r;
          if (op == "==") {
            r = left == right;
          } else if (op == "!=") {
            r = left != right;
          } else if (op == "<") {
            r = less_than(left, right);
          } else if (op == ">") {
            r = less_than(right, left);
          } else if (op == "<=") {
            r = !less_than(right, left);
          } else if (op == ">=") {
            r = !less_than(left, right);
          } else if (op == "in") {
            r = contains(right, left);
          } else {
            r = !contains(right, left);
          }
          if (!r) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::kCondition: {
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        if (e.args[2]) return eval(*e.args[2]);
        return Value::undefined("the conditional expression had no else branch");
      }
    }
    return Value();
  }

  std::string name_;
  std::vector<Frame> frames_;
};

}  // namespace

Template::Template(const std::string& source, std::string name)
    : name_(std::move(name)), body_(std::make_shared<const Body>(parse(source, name_))) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Dict& context) const {
  Evaluator evaluator(name_, context);
  return evaluator.run(*body_);
}

std::string Template::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) throw TemplateError(name_ + ": the context must be a JSON object");
  return render(Value::from_json(context).as_dict());
}

std::string Template::render(const nlohmann::json& context) const {
  if (!context.is_object()) throw TemplateError(name_ + ": the context must be a JSON object");
  return render(Value::from_json(context).as_dict());
}

}  // namespace prefengine::jinja
