#pragma once
// The values a Jinja2 template computes with, with Python's semantics where templates can see
// them: str() and repr() spelling, truthiness, equality, ordering and json.dumps output.
// Lists and dicts are shared (reference semantics, as Python objects); dicts keep insertion order
// and have string keys. A namespace() object is a dict whose attributes can be assigned.
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefengine::jinja {

// Every template error: syntax, unknown filter, raise_exception(), type errors while rendering.
// The message starts with "NAME:LINE: ".
class TemplateError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};
// A callable: a global (range, namespace, raise_exception), a bound method or a macro. Throws
// std::runtime_error for bad arguments (the evaluator adds the template name and line).
using Function = std::function<Value(const CallArgs&)>;

class Value {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value undefined(std::string name = "");
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(List items);
  static Value tuple(List items);  // a list that Python spells (a, b)
  static Value dict(Dict items, bool is_namespace = false);
  static Value function(Function f);
  // JSON objects keep their key order with ordered_json (as Python's json.load does).
  static Value from_json(const nlohmann::ordered_json& j);
  static Value from_json(const nlohmann::json& j);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_float() const { return type_ == Type::kFloat; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kFloat || type_ == Type::kBool; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_namespace() const { return type_ == Type::kDict && namespace_; }
  bool is_function() const { return type_ == Type::kFunction; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return type_ == Type::kBool ? (b_ ? 1 : 0) : i_; }
  double as_double() const { return type_ == Type::kFloat ? d_ : static_cast<double>(as_int()); }
  const std::string& as_string() const { return *s_; }
  const List& as_list() const { return *list_; }
  Dict& as_dict() const { return *dict_; }
  const Function& as_function() const { return *fn_; }
  const std::string& undefined_name() const {
    static const std::string kEmpty;
    return s_ ? *s_ : kEmpty;
  }

  // The dict entry for `key`, nullptr when absent.
  const Value* find(const std::string& key) const;

  bool truthy() const;                 // Python's bool()
  std::string str() const;             // Python's str(); undefined is ""
  std::string repr() const;            // Python's repr()
  std::string type_name() const;       // Python's type name: "str", "int", "list", "dict", ...
  // json.dumps(self, ensure_ascii=False, indent=indent (negative: none), sort_keys=sort_keys).
  std::string to_json(int indent = -1, bool sort_keys = false) const;

  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  void dump_json(std::string* out, int indent, bool sort_keys, int depth) const;

  Type type_ = Type::kUndefined;
  bool b_ = false;
  bool namespace_ = false;
  bool tuple_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;  // the string; for undefined, what was undefined (may be null)
  std::shared_ptr<const List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

// Python's float repr (shortest round-trip digits, "1.0", "1e+16", "inf", "nan").
std::string python_float_repr(double d);
// UTF-8 helpers: code points of `s` (invalid bytes become U+FFFD), and back.
std::vector<char32_t> utf8_decode(const std::string& s);
std::string utf8_encode(const std::vector<char32_t>& cps);
void utf8_append(char32_t cp, std::string* out);
// Python's str.isspace() for one code point.
bool python_isspace(char32_t cp);

}  // namespace prefengine::jinja
