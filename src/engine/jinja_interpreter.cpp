#include "engine/jinja_interpreter.h"

#include <cmath>
#include <limits>

namespace hearth::engine::jinja {

Value* Frame::find(const std::string& name) {
  for (auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void Frame::set(const std::string& name, Value v) {
  if (Value* slot = find(name)) {
    *slot = std::move(v);
  } else {
    vars.emplace_back(name, std::move(v));
  }
}

Interpreter::Interpreter(Limits limits) : limits_(limits), globals_(make_globals()) {}

Interpreter::~Interpreter() {
  for (auto& ns : namespaces_) ns->items.clear();
}

// Macros and `caller` hold their defining scope weakly: the scope holds them, and a strong
// reference back would be a cycle that never frees.
static std::shared_ptr<Frame> lock_scope(const std::weak_ptr<Frame>& scope,
                                         const std::string& name) {
  auto f = scope.lock();
  if (!f) fail("'" + name + "' called after the scope that defined it ended");
  return f;
}

Interpreter::DepthGuard::DepthGuard(Interpreter& in) : in_(in) {
  if (++in_.depth_ > in_.limits_.max_depth) fail("template evaluation nested too deeply");
}

void Interpreter::step() {
  if (++steps_ > limits_.max_steps) fail("template exceeded its step limit (endless loop?)");
}

void Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) fail("template output or string value too large");
}

void Interpreter::append(std::string& out, std::string_view text) {
  check_size(out.size() + text.size());
  out += text;
}

std::string Interpreter::render(const Template& tpl, const Value& context) {
  frame_ = std::make_shared<Frame>();
  if (context.kind == Kind::Dict)
    for (const auto& [k, v] : context.dict->items)
      if (k.kind == Kind::String) frame_->set(k.s, v);
  std::string out;
  exec(tpl.body, out);
  return out;
}

Value Interpreter::lookup(const std::string& name) {
  for (Frame* f = frame_.get(); f; f = f->parent.get())
    if (Value* v = f->find(name)) return *v;
  if (const Value* g = globals_.dict->find(name)) return *g;
  return Value::undefined("'" + name + "' is undefined");
}

Interpreter::Flow Interpreter::exec(const Body& body, std::string& out) {
  DepthGuard guard(*this);
  for (const auto& s : body) {
    Flow f = exec_stmt(*s, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

static void assign_targets(Frame& frame, const std::vector<std::string>& targets, const Value& v) {
  if (targets.size() == 1) {
    frame.set(targets[0], v);
    return;
  }
  if (v.kind != Kind::List && v.kind != Kind::String)
    fail("cannot unpack non-iterable " + type_name(v) + " object");
  std::vector<Value> items = iterate(v);
  if (items.size() != targets.size())
    fail("cannot unpack " + std::to_string(items.size()) + " values into " +
         std::to_string(targets.size()) + " names");
  for (size_t k = 0; k < targets.size(); ++k) frame.set(targets[k], items[k]);
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, std::string& out) {
  step();
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::Text:
      append(out, s.text);
      return Flow::Normal;
    case StmtKind::Output: {
      Value v = eval(*s.expr);
      append(out, to_str(v));
      return Flow::Normal;
    }
    case StmtKind::If:
      for (size_t k = 0; k < s.conds.size(); ++k)
        if (truthy(eval(*s.conds[k]))) return exec(s.bodies[k], out);
      return exec(s.else_body, out);
    case StmtKind::For:
      return exec_for(s, out);
    case StmtKind::Set: {
      Value v = eval(*s.expr);
      if (!s.text.empty()) {  // {% set ns.attr = v %}
        Value ns = lookup(s.targets[0]);
        if (ns.kind != Kind::Namespace)
          fail("cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
        ns.dict->set(Value::string(s.text), std::move(v));
      } else {
        assign_targets(*frame_, s.targets, v);
      }
      return Flow::Normal;
    }
    case StmtKind::SetBlock: {
      std::string text;
      exec(s.body, text);
      frame_->set(s.targets[0], Value::string(std::move(text)));
      return Flow::Normal;
    }
    case StmtKind::Macro:
      frame_->set(s.text, make_macro(s));
      return Flow::Normal;
    case StmtKind::CallBlock: {
      const Expr& call_expr = *s.expr;
      Value fn = eval(*call_expr.a);
      CallArgs args;
      for (const auto& a : call_expr.items) args.pos.push_back(eval(*a));
      for (const auto& [k, a] : call_expr.kwargs) args.kw.emplace_back(k, eval(*a));
      std::weak_ptr<Frame> scope = frame_;
      const Stmt* stmt = &s;
      args.kw.emplace_back(
          "caller", Value::callable("caller", [scope, stmt](Interpreter& in, CallArgs& ca) {
            auto closure = lock_scope(scope, "caller");
            auto saved = in.frame_;
            in.frame_ = std::make_shared<Frame>();
            in.frame_->parent = closure;
            for (size_t k = 0; k < stmt->params.size(); ++k) {
              const Value* a = ca.get(k, stmt->params[k].first);
              in.frame_->set(stmt->params[k].first,
                             a ? *a
                               : (stmt->params[k].second ? in.eval(*stmt->params[k].second)
                                                         : Value::undefined()));
            }
            std::string text;
            try {
              in.exec(stmt->body, text);
            } catch (...) {
              in.frame_ = saved;
              throw;
            }
            in.frame_ = saved;
            return Value::string(std::move(text));
          }));
      append(out, to_str(call(fn, args)));
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      std::string text;
      exec(s.body, text);
      auto saved = frame_;
      frame_ = std::make_shared<Frame>();
      frame_->parent = saved;
      frame_->set("", Value::string(std::move(text)));
      Value v;
      try {
        v = eval(*s.expr);
      } catch (...) {
        frame_ = saved;
        throw;
      }
      frame_ = saved;
      append(out, to_str(v));
      return Flow::Normal;
    }
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
  }
  return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, std::string& out) {
  Value iterable = eval(*s.expr);
  std::vector<Value> items = iterate(iterable);
  auto outer = frame_;
  if (s.cond) {  // `for x in xs if cond`: filter first, so loop.length counts kept items
    std::vector<Value> kept;
    for (const auto& item : items) {
      step();
      frame_ = std::make_shared<Frame>();
      frame_->parent = outer;
      try {
        assign_targets(*frame_, s.targets, item);
        if (truthy(eval(*s.cond))) kept.push_back(item);
      } catch (...) {
        frame_ = outer;
        throw;
      }
    }
    frame_ = outer;
    items = std::move(kept);
  }
  if (items.empty()) return exec(s.else_body, out);
  const int64_t n = static_cast<int64_t>(items.size());
  auto items_ptr = std::make_shared<std::vector<Value>>(std::move(items));
  Flow result = Flow::Normal;
  try {
    for (int64_t k = 0; k < n; ++k) {
      step();
      frame_ = std::make_shared<Frame>();
      frame_->parent = outer;
      Value loop = Value::make_dict();
      auto& d = *loop.dict;
      d.set(Value::string("index"), Value::integer(k + 1));
      d.set(Value::string("index0"), Value::integer(k));
      d.set(Value::string("revindex"), Value::integer(n - k));
      d.set(Value::string("revindex0"), Value::integer(n - k - 1));
      d.set(Value::string("first"), Value::boolean(k == 0));
      d.set(Value::string("last"), Value::boolean(k == n - 1));
      d.set(Value::string("length"), Value::integer(n));
      d.set(Value::string("depth"), Value::integer(1));
      d.set(Value::string("depth0"), Value::integer(0));
      d.set(Value::string("previtem"), k > 0 ? (*items_ptr)[static_cast<size_t>(k - 1)]
                                             : Value::undefined("'loop.previtem' is undefined"));
      d.set(Value::string("nextitem"), k + 1 < n
                                           ? (*items_ptr)[static_cast<size_t>(k + 1)]
                                           : Value::undefined("'loop.nextitem' is undefined"));
      d.set(Value::string("cycle"), Value::callable("cycle", [k](Interpreter&, CallArgs& a) {
              if (a.pos.empty()) fail("no items for cycling given");
              return a.pos[static_cast<size_t>(k) % a.pos.size()];
            }));
      frame_->set("loop", std::move(loop));
      assign_targets(*frame_, s.targets, (*items_ptr)[static_cast<size_t>(k)]);
      Flow f = exec(s.body, out);
      if (f == Flow::Break) break;
    }
  } catch (...) {
    frame_ = outer;
    throw;
  }
  frame_ = outer;
  return result;
}

Value Interpreter::make_macro(const Stmt& s) {
  std::weak_ptr<Frame> scope = frame_;
  const Stmt* stmt = &s;
  return Value::callable(s.text, [scope, stmt](Interpreter& in, CallArgs& args) {
    DepthGuard guard(in);
    auto closure = lock_scope(scope, stmt->text);
    if (args.pos.size() > stmt->params.size())
      fail("macro '" + stmt->text + "' takes not more than " + std::to_string(stmt->params.size()) +
           " argument(s)");
    auto saved = in.frame_;
    in.frame_ = std::make_shared<Frame>();
    in.frame_->parent = closure;
    std::string text;
    try {
      for (const auto& [k, v] : args.kw) {
        bool known = k == "caller";
        for (const auto& p : stmt->params) known = known || p.first == k;
        if (!known) fail("macro '" + stmt->text + "' takes no keyword argument '" + k + "'");
        if (k == "caller") in.frame_->set("caller", v);
      }
      for (size_t k = 0; k < stmt->params.size(); ++k) {
        const auto& [pname, pdefault] = stmt->params[k];
        const Value* a = args.get(k, pname);
        if (a) {
          in.frame_->set(pname, *a);
        } else if (pdefault) {
          in.frame_->set(pname, in.eval(*pdefault));
        } else {
          in.frame_->set(pname, Value::undefined("'" + pname + "' is undefined"));
        }
      }
      in.exec(stmt->body, text);
    } catch (...) {
      in.frame_ = saved;
      throw;
    }
    in.frame_ = saved;
    return Value::string(std::move(text));
  });
}

Value Interpreter::call(const Value& fn, CallArgs& args) {
  step();
  if (fn.kind == Kind::Undefined) fail(fn.s.empty() ? "call of an undefined value" : fn.s);
  if (fn.kind != Kind::Callable) fail("'" + type_name(fn) + "' object is not callable");
  return fn.fn->fn(*this, args);
}

namespace {

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined() && !a.s.empty()) fail(a.s);
  if (b.is_undefined() && !b.s.empty()) fail(b.s);
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) +
       "'");
}

bool is_intlike(const Value& v) { return v.kind == Kind::Int || v.kind == Kind::Bool; }
int64_t int_of(const Value& v) { return v.kind == Kind::Bool ? (v.b ? 1 : 0) : v.i; }

Value repeat(Interpreter& in, const Value& seq, int64_t times) {
  if (times < 0) times = 0;
  if (seq.kind == Kind::String) {
    if (times > 0 && seq.s.size() > in.limits().max_output_bytes / static_cast<uint64_t>(times))
      in.check_size(in.limits().max_output_bytes + 1);
    std::string out;
    for (int64_t k = 0; k < times; ++k) out += seq.s;
    return Value::string(std::move(out));
  }
  const auto& items = seq.list->items;
  if (times > 0 && items.size() > in.limits().max_items / static_cast<uint64_t>(times))
    fail("list too large");
  std::vector<Value> out;
  for (int64_t k = 0; k < times; ++k) out.insert(out.end(), items.begin(), items.end());
  return Value::make_list(std::move(out), seq.list->tuple);
}

}  // namespace

Value Interpreter::binary(const std::string& op, const Expr& e) {
  if (op == "and") {
    Value a = eval(*e.a);
    return truthy(a) ? eval(*e.b) : a;
  }
  if (op == "or") {
    Value a = eval(*e.a);
    return truthy(a) ? a : eval(*e.b);
  }
  Value a = eval(*e.a);
  Value b = eval(*e.b);
  if (op == "~") {
    std::string s = to_str(a);
    std::string t = to_str(b);
    check_size(s.size() + t.size());
    return Value::string(s + t);
  }
  if (op == "+") {
    if (is_intlike(a) && is_intlike(b)) {
      int64_t r;
      if (__builtin_add_overflow(int_of(a), int_of(b), &r)) fail("integer overflow");
      return Value::integer(r);
    }
    if (a.is_number() && b.is_number()) return Value::number(a.as_double() + b.as_double());
    if (a.kind == Kind::String && b.kind == Kind::String) {
      check_size(a.s.size() + b.s.size());
      return Value::string(a.s + b.s);
    }
    if (a.kind == Kind::List && b.kind == Kind::List && a.list->tuple == b.list->tuple) {
      if (a.list->items.size() + b.list->items.size() > limits_.max_items) fail("list too large");
      std::vector<Value> items = a.list->items;
      items.insert(items.end(), b.list->items.begin(), b.list->items.end());
      return Value::make_list(std::move(items), a.list->tuple);
    }
    bad_operands(op, a, b);
  }
  if (op == "*") {
    if (is_intlike(a) && is_intlike(b)) {
      int64_t r;
      if (__builtin_mul_overflow(int_of(a), int_of(b), &r)) fail("integer overflow");
      return Value::integer(r);
    }
    if (a.is_number() && b.is_number()) return Value::number(a.as_double() * b.as_double());
    if ((a.kind == Kind::String || a.kind == Kind::List) && is_intlike(b))
      return repeat(*this, a, int_of(b));
    if ((b.kind == Kind::String || b.kind == Kind::List) && is_intlike(a))
      return repeat(*this, b, int_of(a));
    bad_operands(op, a, b);
  }
  if (!a.is_number() || !b.is_number()) {
    if (op == "%" && a.kind == Kind::String) fail("string formatting with '%' is not supported");
    bad_operands(op, a, b);
  }
  bool ints = is_intlike(a) && is_intlike(b);
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(int_of(a), int_of(b), &r)) fail("integer overflow");
      return Value::integer(r);
    }
    return Value::number(a.as_double() - b.as_double());
  }
  if (op == "/") {
    if (b.as_double() == 0.0) fail("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (b.as_double() == 0.0) fail(op == "%" ? "modulo by zero" : "integer division by zero");
    if (ints) {
      int64_t x = int_of(a), y = int_of(b);
      if (x == std::numeric_limits<int64_t>::min() && y == -1) fail("integer overflow");
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    double x = a.as_double(), y = b.as_double();
    double m = std::fmod(x, y);
    if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
    if (op == "%") return Value::number(m);
    return Value::number(std::floor((x - m) / y + 0.5));  // exact quotient, as Python's divmod
  }
  if (op == "**") {
    if (ints && int_of(b) >= 0) {
      int64_t base = int_of(a), exp = int_of(b), r = 1;
      while (exp > 0) {
        if (exp & 1)
          if (__builtin_mul_overflow(r, base, &r)) fail("integer overflow");
        exp >>= 1;
        if (exp > 0 && __builtin_mul_overflow(base, base, &base)) fail("integer overflow");
      }
      return Value::integer(r);
    }
    if (a.as_double() == 0.0 && b.as_double() < 0) fail("zero to a negative power");
    return Value::number(std::pow(a.as_double(), b.as_double()));
  }
  fail("unknown operator '" + op + "'");
}

Value Interpreter::eval(const Expr& e) {
  DepthGuard guard(*this);
  line_ = e.line;
  switch (e.kind) {
    case ExprKind::Const:
      return e.value;
    case ExprKind::Name:
      return lookup(e.name);
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      for (const auto& i : e.items) items.push_back(eval(*i));
      return Value::make_list(std::move(items), e.kind == ExprKind::Tuple);
    }
    case ExprKind::Dict: {
      Value d = Value::make_dict();
      for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
        Value key = eval(*e.items[k]);
        if (key.kind == Kind::List && !key.list->tuple) fail("unhashable type: 'list'");
        if (key.kind == Kind::Dict) fail("unhashable type: 'dict'");
        d.dict->set(key, eval(*e.items[k + 1]));
      }
      return d;
    }
    case ExprKind::GetAttr:
      return get_attr(eval(*e.a), e.name);
    case ExprKind::GetItem:
      return get_item(eval(*e.a), eval(*e.b));
    case ExprKind::Slice: {
      Value obj = eval(*e.a);
      Value parts[3];
      for (int k = 0; k < 3; ++k)
        parts[k] = e.items[static_cast<size_t>(k)] ? eval(*e.items[static_cast<size_t>(k)])
                                                   : Value::none();
      return slice(obj, parts[0], parts[1], parts[2]);
    }
    case ExprKind::Call: {
      Value fn = eval(*e.a);
      CallArgs args;
      for (const auto& a : e.items) args.pos.push_back(eval(*a));
      for (const auto& [k, a] : e.kwargs) args.kw.emplace_back(k, eval(*a));
      return call(fn, args);
    }
    case ExprKind::Filter: {
      Value v = eval(*e.a);
      CallArgs args;
      for (const auto& a : e.items) args.pos.push_back(eval(*a));
      for (const auto& [k, a] : e.kwargs) args.kw.emplace_back(k, eval(*a));
      step();
      return apply_filter(*this, e.name, v, args);
    }
    case ExprKind::Test: {
      Value v = eval(*e.a);
      CallArgs args;
      for (const auto& a : e.items) args.pos.push_back(eval(*a));
      for (const auto& [k, a] : e.kwargs) args.kw.emplace_back(k, eval(*a));
      bool r = apply_test(*this, e.name, v, args);
      return Value::boolean(e.negated ? !r : r);
    }
    case ExprKind::Neg: {
      Value v = eval(*e.a);
      if (is_intlike(v)) {
        if (int_of(v) == std::numeric_limits<int64_t>::min()) fail("integer overflow");
        return Value::integer(-int_of(v));
      }
      if (v.kind == Kind::Float) return Value::number(-v.f);
      if (v.is_undefined() && !v.s.empty()) fail(v.s);
      fail("bad operand type for unary -: '" + type_name(v) + "'");
    }
    case ExprKind::Pos: {
      Value v = eval(*e.a);
      if (!v.is_number()) fail("bad operand type for unary +: '" + type_name(v) + "'");
      return v.kind == Kind::Bool ? Value::integer(v.b) : v;
    }
    case ExprKind::Not:
      return Value::boolean(!truthy(eval(*e.a)));
    case ExprKind::Binary:
      return binary(e.name, e);
    case ExprKind::Compare: {
      Value left = eval(*e.a);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.items[k]);
        const std::string& op = e.ops[k];
        bool r;
        if (op == "==")
          r = equals(left, right);
        else if (op == "!=")
          r = !equals(left, right);
        else if (op == "in")
          r = contains(right, left);
        else if (op == "notin")
          r = !contains(right, left);
        else {
          int c = compare(left, right);
          r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!r) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::CondExpr:
      if (truthy(eval(*e.a))) return eval(*e.b);
      if (e.c) return eval(*e.c);
      return Value::undefined(
          "the inline if-expression evaluated to false and no else section "
          "was defined");
  }
  fail("unknown expression");
}

}  // namespace hearth::engine::jinja
