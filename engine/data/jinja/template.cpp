// The Jinja2 evaluator: walks the syntax tree of parser.h with Python's semantics for the values
// of value.h. The operators are in operators.cpp, the filters and tests in filters.cpp.
#include "engine/data/jinja/template.h"

#include <algorithm>
#include <ctime>
#include <unordered_map>

#include "engine/data/jinja/ast.h"
#include "engine/data/jinja/filters.h"
#include "engine/data/jinja/operators.h"
#include "engine/data/jinja/parser.h"

namespace prefengine::jinja {
namespace {

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
