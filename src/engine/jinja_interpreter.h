// Tree-walking evaluator for parsed chat templates, with jinja2's default-Undefined and
// scoping rules (for-loop bodies and macros get their own scope; `if` does not).
//
// Resource limits make hostile templates fail instead of hanging or exhausting memory:
// total steps (statements, loop iterations, calls), evaluation depth, output and value sizes.
// One Interpreter renders one template once; it is not shared between threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/jinja_ast.h"
#include "engine/jinja_value.h"

namespace hearth::engine::jinja {

struct Limits {
  size_t max_output_bytes = 16u << 20;  // rendered text and any single string value
  size_t max_items = 1u << 20;          // elements in one list
  size_t max_range = 100000;            // elements range() may produce
  uint64_t max_steps = 500000;          // statements + loop iterations + calls
  int max_depth = 300;                  // nested evaluation (expressions, bodies, macro calls)
};

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;
  Value* find(const std::string& name);
  void set(const std::string& name, Value v);
};

class Interpreter {
 public:
  explicit Interpreter(Limits limits = {});

  // Renders `tpl` with the variables of `context` (a dict). Throws JinjaError.
  std::string render(const Template& tpl, const Value& context);

  Value eval(const Expr& e);
  Value call(const Value& fn, CallArgs& args);
  const Limits& limits() const { return limits_; }
  void step();                          // counts one unit of work against max_steps
  void check_size(size_t bytes) const;  // fails when a string would exceed the limit
  int line() const { return line_; }
  // Namespaces can hold themselves (`set ns.me = ns`); the interpreter empties every
  // namespace it created when it is destroyed, so such cycles do not leak.
  void track_namespace(const Value& ns) { namespaces_.push_back(ns.dict); }
  ~Interpreter();

 private:
  enum class Flow { Normal, Break, Continue };
  struct DepthGuard {
    explicit DepthGuard(Interpreter& in);
    ~DepthGuard() { --in_.depth_; }
    Interpreter& in_;
  };

  Flow exec(const Body& body, std::string& out);
  Flow exec_stmt(const Stmt& s, std::string& out);
  Flow exec_for(const Stmt& s, std::string& out);
  Value make_macro(const Stmt& s);
  Value lookup(const std::string& name);
  void append(std::string& out, std::string_view text);
  Value binary(const std::string& op, const Expr& e);

  Limits limits_;
  std::vector<std::shared_ptr<DictObj>> namespaces_;
  std::shared_ptr<Frame> frame_;
  Value globals_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  int line_ = 0;
};

// Builtins (jinja_builtins.cpp).
Value get_attr(const Value& obj, const std::string& name);  // a.name (methods first, then items)
Value get_item(const Value& obj, const Value& key);         // a[key]
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
bool contains(const Value& container, const Value& item);  // item in container
std::vector<Value> iterate(const Value& v);                // for x in v
Value apply_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args);
Value make_globals();  // range, namespace, dict, raise_exception, strftime_now

}  // namespace hearth::engine::jinja
