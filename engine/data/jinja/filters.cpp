// The built-in Jinja2 filters and tests, and the methods of str and dict values, with Python's
// semantics for the values of value.h.
#include "engine/data/jinja/filters.h"

#include <algorithm>
#include <cmath>

#include "engine/data/jinja/operators.h"
#include "engine/data/jinja/parser.h"

namespace prefengine::jinja {
namespace {

int64_t length_of(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return 0;
    case Value::Type::kString: return static_cast<int64_t>(utf8_decode(v.as_string()).size());
    case Value::Type::kList: return static_cast<int64_t>(v.as_list().size());
    case Value::Type::kDict: return static_cast<int64_t>(v.as_dict().size());
    default: error("object of type '" + v.type_name() + "' has no len()");
  }
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

}  // namespace

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

namespace {

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

}  // namespace

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

}  // namespace prefengine::jinja
