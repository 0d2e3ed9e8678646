#include "engine/data/jinja/parser.h"

#include <algorithm>
#include <set>

#include "engine/data/jinja/lexer.h"

namespace prefengine::jinja {
namespace {

const std::set<std::string>& known_filters() {
  static const std::set<std::string> names = {
      "abs",   "capitalize", "count", "d",       "default", "first", "float", "int",   "items",  "join",
      "last",  "length",     "list",  "lower",   "map",     "reject", "rejectattr", "replace", "reverse", "safe",
      "select", "selectattr", "string", "title", "tojson", "trim", "upper"};
  return names;
}

const std::set<std::string>& known_tests() {
  static const std::set<std::string> names = {
      "boolean", "callable", "defined", "divisibleby", "eq",      "equalto", "even",  "false",    "float",
      "ge",      "gt",       "in",      "integer",     "iterable", "le",     "lower", "lt",       "mapping",
      "ne",      "none",     "number",  "odd",         "sameas",  "sequence", "string", "true",   "undefined",
      "upper"};
  return names;
}

ExprPtr make(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string name) : toks_(std::move(tokens)), name_(std::move(name)) {}

  Body parse_template() {
    std::string end;
    Body body = parse_body({}, &end, "", 0);
    return body;
  }

 private:
  [[noreturn]] void fail(int line, const std::string& what) const {
    throw TemplateError(name_ + ":" + std::to_string(line) + ": " + what);
  }
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  bool is_op(const std::string& op) const { return cur().kind == TokenKind::kOp && cur().text == op; }
  bool is_name(const std::string& n) const { return cur().kind == TokenKind::kName && cur().text == n; }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kVarEnd: return "'}}'";
      case TokenKind::kBlockEnd: return "'%}'";
      case TokenKind::kEof: return "the end of the template";
      case TokenKind::kString: return "a string";
      case TokenKind::kInt:
      case TokenKind::kFloat: return "the number " + t.text;
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const std::string& op) {
    if (!is_op(op)) fail(cur().line, "expected '" + op + "', got " + describe(cur()));
    ++pos_;
  }
  std::string expect_name(const std::string& what) {
    if (cur().kind != TokenKind::kName) fail(cur().line, "expected " + what + ", got " + describe(cur()));
    return toks_[pos_++].text;
  }
  void expect_kind(TokenKind kind, const std::string& what) {
    if (cur().kind != kind) fail(cur().line, "expected " + what + ", got " + describe(cur()));
    ++pos_;
  }

  // Parses nodes until a block tag whose keyword is in `ends` (consumed with its keyword; the
  // keyword goes to *end) or the end of the template (only allowed when ends is empty).
  Body parse_body(const std::vector<std::string>& ends, std::string* end, const std::string& opener, int open_line) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == TokenKind::kEof) {
        if (!ends.empty()) {
          fail(open_line, "unclosed '" + opener + "' block: expected '" + ends.back() +
                              "' before the end of the template");
        }
        return body;
      }
      if (t.kind == TokenKind::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->line = t.line;
        n->text = t.text;
        body.push_back(std::move(n));
        ++pos_;
        continue;
      }
      if (t.kind == TokenKind::kVarBegin) {
        ++pos_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = t.line;
        n->expr = parse_expression();
        expect_kind(TokenKind::kVarEnd, "'}}'");
        body.push_back(std::move(n));
        continue;
      }
      if (t.kind != TokenKind::kBlockBegin) fail(t.line, "unexpected " + describe(t));
      ++pos_;
      const int line = cur().line;
      const std::string keyword = expect_name("a tag name");
      if (std::find(ends.begin(), ends.end(), keyword) != ends.end()) {
        *end = keyword;
        return body;
      }
      body.push_back(parse_statement(keyword, line, opener, ends));
    }
  }

  std::unique_ptr<Node> parse_statement(const std::string& keyword, int line, const std::string& opener,
                                        const std::vector<std::string>& ends) {
    auto n = std::make_unique<Node>();
    n->line = line;
    if (keyword == "if") {
      n->kind = Node::Kind::kIf;
      n->conditions.push_back(parse_expression());
      expect_kind(TokenKind::kBlockEnd, "'%}'");
      while (true) {
        std::string end;
        n->bodies.push_back(parse_body({"elif", "else", "endif"}, &end, "if", line));
        if (end == "endif") break;
        if (end == "elif") {
          n->conditions.push_back(parse_expression());
          expect_kind(TokenKind::kBlockEnd, "'%}'");
          continue;
        }
        expect_kind(TokenKind::kBlockEnd, "'%}'");
        n->bodies.push_back(parse_body({"endif"}, &end, "if", line));
        break;
      }
      expect_kind(TokenKind::kBlockEnd, "'%}'");
    } else if (keyword == "for") {
      n->kind = Node::Kind::kFor;
      const bool paren = is_op("(");
      if (paren) ++pos_;
      n->targets.push_back(expect_name("a loop variable"));
      while (is_op(",")) {
        ++pos_;
        n->targets.push_back(expect_name("a loop variable"));
      }
      if (paren) expect_op(")");
      if (!is_name("in")) fail(cur().line, "expected 'in' in the for tag, got " + describe(cur()));
      ++pos_;
      n->expr = parse_or();
      if (is_name("if")) {
        ++pos_;
        n->filter = parse_expression();
      }
      if (is_name("recursive")) fail(cur().line, "recursive loops are not supported");
      expect_kind(TokenKind::kBlockEnd, "'%}'");
      std::string end;
      n->bodies.push_back(parse_body({"else", "endfor"}, &end, "for", line));
      if (end == "else") {
        expect_kind(TokenKind::kBlockEnd, "'%}'");
        n->bodies.push_back(parse_body({"endfor"}, &end, "for", line));
      }
      expect_kind(TokenKind::kBlockEnd, "'%}'");
    } else if (keyword == "set") {
      n->kind = Node::Kind::kSet;
      n->targets.push_back(expect_name("a variable name"));
      if (is_op(".")) {
        ++pos_;
        n->attr = expect_name("an attribute name");
      } else {
        while (is_op(",")) {
          ++pos_;
          n->targets.push_back(expect_name("a variable name"));
        }
      }
      if (is_op("=")) {
        ++pos_;
        n->expr = parse_tuple_or_expression();
        expect_kind(TokenKind::kBlockEnd, "'%}'");
      } else {
        if (n->targets.size() != 1 || !n->attr.empty()) fail(cur().line, "expected '=' in the set tag");
        expect_kind(TokenKind::kBlockEnd, "'%}'");
        std::string end;
        n->bodies.push_back(parse_body({"endset"}, &end, "set", line));
        expect_kind(TokenKind::kBlockEnd, "'%}'");
      }
    } else if (keyword == "macro") {
      n->kind = Node::Kind::kMacro;
      n->text = expect_name("a macro name");
      expect_op("(");
      while (!is_op(")")) {
        n->targets.push_back(expect_name("a parameter name"));
        if (is_op("=")) {
          ++pos_;
          n->defaults.push_back(parse_expression());
        } else {
          n->defaults.push_back(nullptr);
        }
        if (!is_op(")")) expect_op(",");
      }
      ++pos_;
      expect_kind(TokenKind::kBlockEnd, "'%}'");
      std::string end;
      n->bodies.push_back(parse_body({"endmacro"}, &end, "macro", line));
      expect_kind(TokenKind::kBlockEnd, "'%}'");
    } else if (keyword == "break" || keyword == "continue") {
      n->kind = keyword == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      expect_kind(TokenKind::kBlockEnd, "'%}'");
    } else if (keyword == "generation") {
      n->kind = Node::Kind::kBlock;
      expect_kind(TokenKind::kBlockEnd, "'%}'");
      std::string end;
      n->bodies.push_back(parse_body({"endgeneration"}, &end, "generation", line));
      expect_kind(TokenKind::kBlockEnd, "'%}'");
    } else if (keyword.rfind("end", 0) == 0 || keyword == "elif" || keyword == "else") {
      if (!ends.empty()) {
        fail(line, "unexpected '" + keyword + "' inside the '" + opener + "' block (expected '" + ends.back() + "')");
      }
      fail(line, "unexpected '" + keyword + "': no open block");
    } else {
      fail(line, "unknown tag '" + keyword + "'");
    }
    return n;
  }

  ExprPtr parse_tuple_or_expression() {
    const int line = cur().line;
    ExprPtr first = parse_expression();
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::kTuple, line);
    t->args.push_back(std::move(first));
    while (is_op(",")) {
      ++pos_;
      if (cur().kind == TokenKind::kBlockEnd || cur().kind == TokenKind::kVarEnd || is_op(")")) break;
      t->args.push_back(parse_expression());
    }
    return t;
  }

  ExprPtr parse_expression() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      auto c = make(Expr::Kind::kCondition, cur().line);
      ++pos_;
      c->args.push_back(std::move(e));
      c->args.push_back(parse_or());
      if (is_name("else")) {
        ++pos_;
        c->args.push_back(parse_expression());
      } else {
        c->args.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, int line) {
    auto e = make(Expr::Kind::kBinary, line);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const int line = cur().line;
      ++pos_;
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const int line = cur().line;
      ++pos_;
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      auto e = make(Expr::Kind::kUnary, cur().line);
      ++pos_;
      e->name = "not";
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().kind == TokenKind::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        ++pos_;
      } else if (is_name("in")) {
        op = "in";
        ++pos_;
      } else if (is_name("not") && peek().kind == TokenKind::kName && peek().text == "in") {
        op = "notin";
        pos_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const int line = cur().line;
      ++pos_;
      e = binary(op, std::move(e), parse_concat(), line);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const int line = cur().line;
      ++pos_;
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const int line = cur().line;
      ++pos_;
      e = binary(op, std::move(e), parse_pow(), line);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      ++pos_;
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::kUnary, cur().line);
      e->name = cur().text;
      ++pos_;
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.kind == TokenKind::kName) {
      ++pos_;
      auto e = make(Expr::Kind::kLiteral, line);
      if (t.text == "true" || t.text == "True") {
        e->value = Value::boolean(true);
      } else if (t.text == "false" || t.text == "False") {
        e->value = Value::boolean(false);
      } else if (t.text == "none" || t.text == "None") {
        e->value = Value::none();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = t.text;
      }
      return e;
    }
    if (t.kind == TokenKind::kString) {
      std::string s;
      while (cur().kind == TokenKind::kString) s += toks_[pos_++].text;  // adjacent literals join
      auto e = make(Expr::Kind::kLiteral, line);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat) {
      ++pos_;
      auto e = make(Expr::Kind::kLiteral, line);
      try {
        e->value = t.kind == TokenKind::kInt ? Value::integer(std::stoll(t.text)) : Value::number(std::stod(t.text));
      } catch (const std::exception&) {
        fail(line, "number out of range: " + t.text);
      }
      return e;
    }
    if (is_op("(")) {
      ++pos_;
      if (is_op(")")) {
        ++pos_;
        return make(Expr::Kind::kTuple, line);
      }
      ExprPtr first = parse_expression();
      if (is_op(")")) {
        ++pos_;
        return first;
      }
      auto tup = make(Expr::Kind::kTuple, line);
      tup->args.push_back(std::move(first));
      while (is_op(",")) {
        ++pos_;
        if (is_op(")")) break;
        tup->args.push_back(parse_expression());
      }
      expect_op(")");
      return tup;
    }
    if (is_op("[")) {
      ++pos_;
      auto list = make(Expr::Kind::kList, line);
      while (!is_op("]")) {
        list->args.push_back(parse_expression());
        if (!is_op("]")) expect_op(",");
      }
      ++pos_;
      return list;
    }
    if (is_op("{")) {
      ++pos_;
      auto dict = make(Expr::Kind::kDict, line);
      while (!is_op("}")) {
        dict->args.push_back(parse_expression());
        expect_op(":");
        dict->args.push_back(parse_expression());
        if (!is_op("}")) expect_op(",");
      }
      ++pos_;
      return dict;
    }
    fail(line, "unexpected " + describe(t) + " in an expression");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const int line = cur().line;
      if (is_op(".")) {
        ++pos_;
        if (cur().kind == TokenKind::kInt) {
          auto item = make(Expr::Kind::kGetItem, line);
          auto index = make(Expr::Kind::kLiteral, line);
          index->value = Value::integer(std::stoll(toks_[pos_++].text));
          item->args.push_back(std::move(e));
          item->args.push_back(std::move(index));
          e = std::move(item);
          continue;
        }
        auto a = make(Expr::Kind::kGetAttr, line);
        a->name = expect_name("an attribute name after '.'");
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        ++pos_;
        e = parse_subscript(std::move(e), line);
      } else if (is_op("(")) {
        e = parse_call(std::move(e), Expr::Kind::kCall, line);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    bool is_slice = false;
    if (!is_op(":")) parts[0] = parse_expression();
    if (is_op(":")) {
      is_slice = true;
      ++pos_;
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression();
      if (is_op(":")) {
        ++pos_;
        if (!is_op("]")) parts[2] = parse_expression();
      }
    }
    expect_op("]");
    auto e = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, line);
    e->args.push_back(std::move(obj));
    if (is_slice) {
      for (auto& p : parts) e->args.push_back(std::move(p));
    } else {
      e->args.push_back(std::move(parts[0]));
    }
    return e;
  }

  // Parses "(args)" into e (whose args[0] is already set when called for a filter or test).
  void parse_call_args(Expr* e) {
    expect_op("(");
    std::vector<ExprPtr> named;
    while (!is_op(")")) {
      if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOp && peek().text == "=") {
        e->names.push_back(cur().text);
        pos_ += 2;
        named.push_back(parse_expression());
      } else {
        if (!named.empty()) fail(cur().line, "a positional argument follows a keyword argument");
        e->args.push_back(parse_expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    ++pos_;
    for (auto& n : named) e->args.push_back(std::move(n));
  }

  ExprPtr parse_call(ExprPtr callee, Expr::Kind kind, int line) {
    auto e = make(kind, line);
    e->args.push_back(std::move(callee));
    parse_call_args(e.get());
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      const int line = cur().line;
      if (is_op("|")) {
        ++pos_;
        auto f = make(Expr::Kind::kFilter, line);
        f->name = expect_name("a filter name after '|'");
        if (!is_known_filter(f->name)) fail(line, "unknown filter '" + f->name + "'");
        f->args.push_back(std::move(e));
        if (is_op("(")) parse_call_args(f.get());
        e = std::move(f);
      } else if (is_name("is")) {
        ++pos_;
        auto t = make(Expr::Kind::kTest, line);
        if (is_name("not")) {
          t->negated = true;
          ++pos_;
        }
        t->name = expect_name("a test name after 'is'");
        if (!is_known_test(t->name)) fail(line, "unknown test '" + t->name + "'");
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(t.get());
        } else if ((cur().kind == TokenKind::kName || cur().kind == TokenKind::kString ||
                    cur().kind == TokenKind::kInt || cur().kind == TokenKind::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail(cur().line, "tests cannot be chained with 'is'");
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e), Expr::Kind::kCall, line);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> toks_;
  std::string name_;
  size_t pos_ = 0;
};

}  // namespace

bool is_known_filter(const std::string& name) { return known_filters().count(name) > 0; }
bool is_known_test(const std::string& name) { return known_tests().count(name) > 0; }

Body parse(const std::string& source, const std::string& name) {
  return Parser(lex(source, name), name).parse_template();
}

}  // namespace prefengine::jinja
