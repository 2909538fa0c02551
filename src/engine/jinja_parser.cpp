#include "engine/jinja_parser.h"

#include <charconv>
#include <cstdlib>

#include "engine/jinja_lexer.h"

namespace hearth::engine::jinja {
namespace {

// Deep enough for any real template, shallow enough that recursion cannot exhaust the stack.
constexpr int kMaxDepth = 128;

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  std::shared_ptr<const Template> run() {
    auto tpl = std::make_shared<Template>();
    std::string end = parse_body(tpl->body, {});
    if (!end.empty()) error("unexpected '" + end + "'");
    return tpl;
  }

 private:
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.error("template nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  const Token& peek(size_t ahead = 0) const {
    size_t k = std::min(pos_ + ahead, t_.size() - 1);
    return t_[k];
  }
  const Token& next() {
    const Token& tok = t_[pos_];
    if (pos_ + 1 < t_.size()) ++pos_;
    return tok;
  }
  [[noreturn]] void error(const std::string& what) const {
    fail("line " + std::to_string(peek().line) + ": " + what);
  }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == TokType::Op && peek(ahead).text == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == TokType::Name && peek(ahead).text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) error(std::string("expected '") + op + "', got " + describe(peek()));
    next();
  }
  std::string expect_name() {
    if (peek().type != TokType::Name) error("expected a name, got " + describe(peek()));
    return next().text;
  }
  void expect_block_end() {
    if (peek().type != TokType::BlockEnd)
      error("expected end of tag '%}', got " + describe(peek()));
    next();
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokType::Eof:
        return "end of template";
      case TokType::BlockEnd:
        return "'%}'";
      case TokType::VarEnd:
        return "'}}'";
      case TokType::String:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }

  ExprPtr make(ExprKind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = peek().line;
    return e;
  }

  // Parses statements until one of `ends` opens a block tag; returns that tag's name
  // (consumed, the rest of its tag is left for the caller) or "" at end of template.
  std::string parse_body(Body& body, std::initializer_list<const char*> ends) {
    DepthGuard guard(*this);
    while (true) {
      const Token& tok = peek();
      if (tok.type == TokType::Eof) {
        if (ends.size() != 0)
          error(std::string("unexpected end of template; expected '") + *(ends.end() - 1) + "'");
        return "";
      }
      if (tok.type == TokType::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->line = tok.line;
        s->text = tok.text;
        body.push_back(std::move(s));
        next();
      } else if (tok.type == TokType::VarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Output;
        s->line = tok.line;
        s->expr = parse_tuple(true);
        if (peek().type != TokType::VarEnd) error("expected '}}', got " + describe(peek()));
        next();
        body.push_back(std::move(s));
      } else if (tok.type == TokType::BlockBegin) {
        next();
        if (peek().type != TokType::Name) error("expected a tag name, got " + describe(peek()));
        std::string tag = peek().text;
        for (const char* e : ends)
          if (tag == e) {
            next();
            return tag;
          }
        body.push_back(parse_statement());
      } else {
        error("unexpected " + describe(tok));
      }
    }
  }

  std::unique_ptr<Stmt> parse_statement() {
    int line = peek().line;
    std::string tag = next().text;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (tag == "if") {
      s->kind = StmtKind::If;
      s->conds.push_back(parse_tuple(false));
      expect_block_end();
      while (true) {
        s->bodies.emplace_back();
        std::string end = parse_body(s->bodies.back(), {"elif", "else", "endif"});
        if (end == "elif") {
          s->conds.push_back(parse_tuple(false));
          expect_block_end();
        } else if (end == "else") {
          expect_block_end();
          if (parse_body(s->else_body, {"endif"}).empty()) error("missing endif");
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (tag == "for") {
      s->kind = StmtKind::For;
      parse_targets(s->targets);
      if (!is_name("in")) error("expected 'in' in for loop");
      next();
      s->expr = parse_tuple(false, /*allow_cond=*/false);
      if (is_name("if")) {
        next();
        s->cond = parse_expression();
      }
      if (is_name("recursive")) error("recursive for loops are not supported");
      expect_block_end();
      std::string end = parse_body(s->body, {"else", "endfor"});
      if (end == "else") {
        expect_block_end();
        parse_body(s->else_body, {"endfor"});
      }
      expect_block_end();
    } else if (tag == "set") {
      std::string first = expect_name();
      if (is_op(".")) {
        next();
        s->kind = StmtKind::Set;
        s->targets.push_back(first);
        s->text = expect_name();
        expect_op("=");
        s->expr = parse_tuple(false);
        expect_block_end();
      } else if (peek().type == TokType::BlockEnd) {
        next();
        s->kind = StmtKind::SetBlock;
        s->targets.push_back(first);
        parse_body(s->body, {"endset"});
        expect_block_end();
      } else {
        s->kind = StmtKind::Set;
        s->targets.push_back(first);
        while (is_op(",")) {
          next();
          s->targets.push_back(expect_name());
        }
        expect_op("=");
        s->expr = parse_tuple(false);
        expect_block_end();
      }
    } else if (tag == "macro") {
      s->kind = StmtKind::Macro;
      s->text = expect_name();
      parse_params(s->params);
      expect_block_end();
      parse_body(s->body, {"endmacro"});
      if (peek().type == TokType::Name) next();  // {% endmacro name %}
      expect_block_end();
    } else if (tag == "call") {
      s->kind = StmtKind::CallBlock;
      if (is_op("(")) parse_params(s->params);
      s->expr = parse_expression();
      if (s->expr->kind != ExprKind::Call) error("expected a macro call in call block");
      expect_block_end();
      parse_body(s->body, {"endcall"});
      expect_block_end();
    } else if (tag == "filter") {
      s->kind = StmtKind::FilterBlock;
      auto placeholder = make(ExprKind::Name);
      placeholder->name = "";  // the rendered body is bound to the empty name
      s->expr = parse_filter(std::move(placeholder));
      while (is_op("|")) s->expr = parse_filter(std::move(s->expr));
      expect_block_end();
      parse_body(s->body, {"endfilter"});
      expect_block_end();
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? StmtKind::Break : StmtKind::Continue;
      expect_block_end();
    } else {
      fail("line " + std::to_string(line) + ": unsupported tag '" + tag + "'");
    }
    return s;
  }

  void parse_targets(std::vector<std::string>& out) {
    bool paren = is_op("(");
    if (paren) next();
    out.push_back(expect_name());
    while (is_op(",")) {
      next();
      if (peek().type != TokType::Name) break;
      out.push_back(expect_name());
    }
    if (paren) expect_op(")");
  }

  void parse_params(std::vector<std::pair<std::string, ExprPtr>>& params) {
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string name = expect_name();
      ExprPtr def;
      if (is_op("=")) {
        next();
        def = parse_expression();
      }
      params.emplace_back(std::move(name), std::move(def));
    }
    next();
  }

  // expression, or an implicit tuple `a, b` (as in `set a, b = 1, 2`).
  ExprPtr parse_tuple(bool in_output, bool allow_cond = true) {
    (void)in_output;
    int line = peek().line;
    ExprPtr first = allow_cond ? parse_expression() : parse_or();
    if (!is_op(",")) return first;
    auto t = make(ExprKind::Tuple);
    t->line = line;
    t->items.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (peek().type == TokType::BlockEnd || peek().type == TokType::VarEnd) break;
      t->items.push_back(allow_cond ? parse_expression() : parse_or());
    }
    return t;
  }

  ExprPtr parse_expression() {
    DepthGuard guard(*this);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      next();
      auto c = make(ExprKind::CondExpr);
      c->a = parse_or();
      c->b = std::move(e);
      if (is_name("else")) {
        next();
        c->c = parse_expression();
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b) {
    auto e = make(ExprKind::Binary);
    e->name = op;
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      next();
      e = binary("or", std::move(e), parse_and());
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      next();
      e = binary("and", std::move(e), parse_not());
    }
    return e;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto e = make(ExprKind::Not);
      next();
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (peek().type == TokType::Op &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
           peek().text == "<=" || peek().text == ">" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::Compare);
        cmp->a = std::move(e);
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      e = binary(op, std::move(e), parse_concat());
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      next();
      e = binary("~", std::move(e), parse_math2());
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      next();
      e = binary("**", std::move(e), parse_unary(true));
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = make(is_op("-") ? ExprKind::Neg : ExprKind::Pos);
      next();
      u->a = parse_unary(false);
      e = std::move(u);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    auto e = make(ExprKind::Const);
    switch (tok.type) {
      case TokType::Name: {
        const std::string& n = tok.text;
        if (n == "true" || n == "True")
          e->value = Value::boolean(true);
        else if (n == "false" || n == "False")
          e->value = Value::boolean(false);
        else if (n == "none" || n == "None")
          e->value = Value::none();
        else {
          e->kind = ExprKind::Name;
          e->name = n;
        }
        next();
        return e;
      }
      case TokType::String: {
        std::string s;
        while (peek().type == TokType::String) s += next().text;  // adjacent literals join
        e->value = Value::string(std::move(s));
        return e;
      }
      case TokType::Int: {
        int64_t v = 0;
        auto r = std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
        if (r.ec != std::errc()) {
          e->value = Value::number(std::strtod(tok.text.c_str(), nullptr));
        } else {
          e->value = Value::integer(v);
        }
        next();
        return e;
      }
      case TokType::Float:
        e->value = Value::number(std::strtod(tok.text.c_str(), nullptr));
        next();
        return e;
      case TokType::Op:
        if (tok.text == "(") {
          next();
          if (is_op(")")) {
            next();
            e->kind = ExprKind::Tuple;
            return e;
          }
          ExprPtr inner = parse_expression();
          if (is_op(",")) {
            auto t = make(ExprKind::Tuple);
            t->items.push_back(std::move(inner));
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              t->items.push_back(parse_expression());
            }
            inner = std::move(t);
          }
          expect_op(")");
          return inner;
        }
        if (tok.text == "[") {
          next();
          e->kind = ExprKind::List;
          while (!is_op("]")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("]")) break;
            e->items.push_back(parse_expression());
          }
          next();
          return e;
        }
        if (tok.text == "{") {
          next();
          e->kind = ExprKind::Dict;
          while (!is_op("}")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("}")) break;
            e->items.push_back(parse_expression());
            expect_op(":");
            e->items.push_back(parse_expression());
          }
          next();
          return e;
        }
        break;
      default:
        break;
    }
    error("unexpected " + describe(tok) + " in expression");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        next();
        auto g = make(ExprKind::GetAttr);
        if (peek().type == TokType::Name) {
          g->name = next().text;
        } else if (peek().type == TokType::Int) {
          g->kind = ExprKind::GetItem;
          auto idx = make(ExprKind::Const);
          idx->value = Value::integer(std::strtoll(next().text.c_str(), nullptr, 10));
          g->b = std::move(idx);
        } else {
          error("expected an attribute name after '.'");
        }
        g->a = std::move(e);
        e = std::move(g);
      } else if (is_op("[")) {
        next();
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    ExprPtr parts[3];
    bool is_slice = false;
    int idx = 0;
    if (!is_op(":")) parts[0] = parse_expression();
    while (is_op(":")) {
      is_slice = true;
      next();
      if (++idx > 2) error("too many ':' in slice");
      if (!is_op(":") && !is_op("]")) parts[idx] = parse_expression();
    }
    expect_op("]");
    auto g = make(is_slice ? ExprKind::Slice : ExprKind::GetItem);
    g->a = std::move(obj);
    if (is_slice) {
      for (auto& p : parts) g->items.push_back(std::move(p));
    } else {
      g->b = std::move(parts[0]);
    }
    return g;
  }

  void parse_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error("*args/**kwargs in calls are not supported");
      if (peek().type == TokType::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression());
      } else {
        if (!e.kwargs.empty()) error("positional argument after keyword argument");
        e.items.push_back(parse_expression());
      }
    }
    next();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = make(ExprKind::Call);
    c->a = std::move(callee);
    parse_args(*c);
    return c;
  }

  ExprPtr parse_filter(ExprPtr obj) {
    if (is_op("|")) next();
    auto f = make(ExprKind::Filter);
    f->name = expect_name();
    while (is_op(".")) {  // dotted filter names
      next();
      f->name += "." + expect_name();
    }
    f->a = std::move(obj);
    if (is_op("(")) parse_args(*f);
    return f;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        next();
        auto t = make(ExprKind::Test);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name();
        t->a = std::move(e);
        if (is_op("(")) {
          parse_args(*t);
        } else if ((peek().type == TokType::Name || peek().type == TokType::String ||
                    peek().type == TokType::Int || peek().type == TokType::Float || is_op("(") ||
                    is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          ExprPtr arg = parse_primary();
          t->items.push_back(parse_postfix(std::move(arg)));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::shared_ptr<const Template> parse_template(std::string_view source) {
  return Parser(lex(source)).run();
}

}  // namespace hearth::engine::jinja
