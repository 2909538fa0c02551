// Syntax tree of a parsed chat template. Built once by the parser, then only read.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja_value.h"

namespace hearth::engine::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Const,     // value
  Name,      // name
  List,      // items
  Tuple,     // items
  Dict,      // items as key, value pairs
  GetAttr,   // a.name
  GetItem,   // a[b]
  Slice,     // a[items0:items1:items2] (null items allowed)
  Call,      // a(items, kwargs)
  Filter,    // a | name(items, kwargs)
  Test,      // a is [not] name(items, kwargs)
  Neg,       // -a
  Pos,       // +a
  Not,       // not a
  Binary,    // a op b: + - * / // % ** ~ and or in notin
  Compare,   // a ops[0] items[0] ops[1] items[1] ...
  CondExpr,  // b if a else c
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value value;
  std::string name;  // Name, attribute, filter/test name, operator
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare
  bool negated = false;          // Test
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind {
  Text,         // text
  Output,       // {{ expr }}
  If,           // conds[k] -> bodies[k]; else_body
  For,          // targets in expr [if cond] body else_body
  Set,          // targets (or ns_attr on targets[0]) = expr
  SetBlock,     // targets[0] = rendered body
  Macro,        // name(params = defaults) body
  CallBlock,    // {% call(params) expr %} body
  FilterBlock,  // {% filter expr %} body (expr is a Filter on a placeholder)
  Break,
  Continue,
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;  // Text; Macro name; Set namespace attribute
  ExprPtr expr;      // Output / For iterable / Set value / CallBlock call / FilterBlock
  ExprPtr cond;      // For filter
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body, else_body;
  std::vector<std::string> targets;
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro / CallBlock parameters
};

struct Template {
  Body body;
};

}  // namespace hearth::engine::jinja
