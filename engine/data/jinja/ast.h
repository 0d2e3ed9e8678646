#pragma once
// The syntax tree the parser builds and the evaluator walks.
#include <memory>
#include <string>
#include <vector>

#include "engine/data/jinja/value.h"

namespace prefengine::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kList,      // args
    kTuple,     // args
    kDict,      // args: key, value, key, value, ...
    kGetAttr,   // args[0].name
    kGetItem,   // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null parts absent)
    kCall,      // args[0](args[1..], names: keyword names of the last names.size() args)
    kFilter,    // args[0] | name(args[1..]); keyword args as in kCall
    kTest,      // args[0] is [not] name(args[1..]); negated
    kUnary,     // op args[0]: "-", "+", "not"
    kBinary,    // args[0] op args[1]: + - * / // % ** ~ and or
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...: == != < > <= >= in notin
    kCondition, // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;
  std::vector<std::string> ops;
  std::vector<std::string> names;  // keyword argument names
  std::vector<ExprPtr> args;
  bool negated = false;
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // conditions[i] -> bodies[i]; bodies.size() == conditions.size() + 1 when there is an else
    kFor,       // for targets in expr [if filter]: bodies[0]; else: bodies[1]
    kSet,       // set targets = expr, or set ns.attr = expr (attr non-empty), or block set (bodies[0])
    kMacro,     // macro name(targets = defaults): bodies[0]
    kBreak,
    kContinue,
    kBlock,     // a body with no effect of its own ({% generation %})
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  std::vector<std::string> targets;
  std::string attr;
  std::vector<ExprPtr> defaults;  // macro parameter defaults, null where none
};

}  // namespace prefengine::jinja
