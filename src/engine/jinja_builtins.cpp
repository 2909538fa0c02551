// Filters, tests, methods and global functions of the chat-template interpreter, each
// following the jinja2 3.1 / Python 3 behaviour it is named after. `tojson` is the one
// transformers installs (json.dumps, ensure_ascii=False, insertion order, no HTML escaping).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "engine/jinja_interpreter.h"
#include "platform/clock.h"

namespace hearth::engine::jinja {
namespace {

std::string object_desc(const Value& v) { return type_name(v) + " object"; }

[[noreturn]] void fail_undefined(const Value& v) {
  fail(v.s.empty() ? std::string("value is undefined") : v.s);
}

int64_t as_int(const Value& v, const char* what) {
  if (v.kind == Kind::Int) return v.i;
  if (v.kind == Kind::Bool) return v.b;
  fail(std::string(what) + " must be an integer, not '" + type_name(v) + "'");
}

std::string as_str(const Value& v, const char* what) {
  if (v.kind != Kind::String)
    fail(std::string(what) + " must be a string, not '" + type_name(v) + "'");
  return v.s;
}

std::string from_cps(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t k = begin; k < end; ++k) append_utf8(out, cps[k]);
  return out;
}

// Python str.strip/lstrip/rstrip; `chars` null strips whitespace.
std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  auto cps = decode_utf8(s);
  std::vector<uint32_t> set;
  bool ws = !chars || chars->is_none();
  if (!ws) set = decode_utf8(as_str(*chars, "strip argument"));
  auto drop = [&](uint32_t cp) {
    return ws ? is_py_space(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && drop(cps[b])) ++b;
  if (right)
    while (e > b && drop(cps[e - 1])) --e;
  return from_cps(cps, b, e);
}

std::string map_case(const std::string& s, bool upper) {
  std::string out;
  for (uint32_t cp : decode_utf8(s)) append_utf8(out, upper ? to_upper_cp(cp) : to_lower_cp(cp));
  return out;
}

std::string capitalize(const std::string& s) {
  auto cps = decode_utf8(s);
  std::string out;
  for (size_t k = 0; k < cps.size(); ++k)
    append_utf8(out, k == 0 ? to_upper_cp(cps[k]) : to_lower_cp(cps[k]));
  return out;
}

// Python str.title(): upper after a non-letter, lower after a letter.
std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t cp : decode_utf8(s)) {
    bool cased = is_alpha_cp(cp);
    append_utf8(out, cased ? (prev_cased ? to_lower_cp(cp) : to_upper_cp(cp)) : cp);
    prev_cased = cased;
  }
  return out;
}

// jinja2 do_title: words start after runs of [-\s({\[<].
std::string jinja_title(const std::string& s) {
  std::string out;
  bool start = true;
  for (uint32_t cp : decode_utf8(s)) {
    bool sep = is_py_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
    if (sep) {
      append_utf8(out, cp);
      start = true;
    } else {
      append_utf8(out, start ? to_upper_cp(cp) : to_lower_cp(cp));
      start = false;
    }
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count, Interpreter& in) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every code point
    auto cps = decode_utf8(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (k < cps.size()) append_utf8(out, cps[k]);
      in.check_size(out.size());
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    in.check_size(out.size());
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos);
  return out;
}

std::vector<Value> split(const std::string& s, const Value* sep, int64_t maxsplit) {
  std::vector<Value> out;
  if (!sep || sep->is_none()) {
    auto cps = decode_utf8(s);
    size_t k = 0;
    while (true) {
      while (k < cps.size() && is_py_space(cps[k])) ++k;
      if (k >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t e = cps.size();
        while (e > k && is_py_space(cps[e - 1])) --e;
        out.push_back(Value::string(from_cps(cps, k, e)));
        break;
      }
      size_t b = k;
      while (k < cps.size() && !is_py_space(cps[k])) ++k;
      out.push_back(Value::string(from_cps(cps, b, k)));
    }
    return out;
  }
  std::string d = as_str(*sep, "split separator");
  if (d.empty()) fail("empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    out.push_back(Value::string(s.substr(pos, hit - pos)));
    pos = hit + d.size();
  }
  out.push_back(Value::string(s.substr(pos)));
  return out;
}

// Python str.format with {} / {0} / {name} fields (no format specs beyond empty).
std::string py_format(const std::string& fmt, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < fmt.size(); ++k) {
    char c = fmt[k];
    if (c == '{' && k + 1 < fmt.size() && fmt[k + 1] == '{') {
      out += '{';
      ++k;
    } else if (c == '}' && k + 1 < fmt.size() && fmt[k + 1] == '}') {
      out += '}';
      ++k;
    } else if (c == '{') {
      size_t e = fmt.find('}', k);
      if (e == std::string::npos) fail("format: single '{' encountered in format string");
      std::string field = fmt.substr(k + 1, e - k - 1);
      if (field.find_first_of(":!") != std::string::npos)
        fail("format: format specs are not supported");
      const Value* v = nullptr;
      if (field.empty()) {
        v = auto_index < args.pos.size() ? &args.pos[auto_index] : nullptr;
        ++auto_index;
      } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
        size_t idx = std::stoul(field);
        v = idx < args.pos.size() ? &args.pos[idx] : nullptr;
      } else {
        for (const auto& [kname, kv] : args.kw)
          if (kname == field) v = &kv;
      }
      if (!v) fail("format: missing argument for field '{" + field + "}'");
      out += to_str(*v);
      k = e;
    } else if (c == '}') {
      fail("format: single '}' encountered in format string");
    } else {
      out += c;
    }
  }
  return out;
}

bool starts_or_ends(const std::string& s, const Value& arg, bool starts) {
  auto check = [&](const Value& p) {
    std::string x = as_str(p, starts ? "startswith argument" : "endswith argument");
    if (x.size() > s.size()) return false;
    return starts ? s.compare(0, x.size(), x) == 0
                  : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (arg.kind == Kind::List && arg.list->tuple) {
    for (const auto& p : arg.list->items)
      if (check(p)) return true;
    return false;
  }
  return check(arg);
}

Value bound(const std::string& name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  return Value::callable(name, std::move(fn));
}

Value string_method(const Value& obj, const std::string& name) {
  const std::string s = obj.s;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return bound(name, [s, l, r](Interpreter&, CallArgs& a) {
      return Value::string(strip(s, a.get(0, "chars"), l, r));
    });
  }
  if (name == "upper" || name == "lower")
    return bound(name, [s, up = name == "upper"](Interpreter&, CallArgs&) {
      return Value::string(map_case(s, up));
    });
  if (name == "title")
    return bound(name, [s](Interpreter&, CallArgs&) { return Value::string(py_title(s)); });
  if (name == "capitalize")
    return bound(name, [s](Interpreter&, CallArgs&) { return Value::string(capitalize(s)); });
  if (name == "split")
    return bound(name, [s](Interpreter&, CallArgs& a) {
      const Value* m = a.get(1, "maxsplit");
      return Value::make_list(split(s, a.get(0, "sep"), m ? as_int(*m, "maxsplit") : -1));
    });
  if (name == "splitlines")
    return bound(name, [s](Interpreter&, CallArgs&) {
      std::vector<Value> out;
      size_t b = 0;
      for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == '\n' || s[k] == '\r') {
          out.push_back(Value::string(s.substr(b, k - b)));
          if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
          b = k + 1;
        }
      }
      if (b < s.size()) out.push_back(Value::string(s.substr(b)));
      return Value::make_list(std::move(out));
    });
  if (name == "startswith" || name == "endswith")
    return bound(name, [s, st = name == "startswith"](Interpreter&, CallArgs& a) {
      if (a.pos.empty()) fail("startswith/endswith takes at least 1 argument");
      return Value::boolean(starts_or_ends(s, a.pos[0], st));
    });
  if (name == "replace")
    return bound(name, [s](Interpreter& in, CallArgs& a) {
      if (a.pos.size() < 2) fail("replace expected at least 2 arguments");
      const Value* c = a.get(2, "count");
      return Value::string(replace_all(s, as_str(a.pos[0], "replace argument"),
                                       as_str(a.pos[1], "replace argument"),
                                       c ? as_int(*c, "count") : -1, in));
    });
  if (name == "find" || name == "rfind" || name == "index" || name == "count")
    return bound(name, [s, name](Interpreter&, CallArgs& a) {
      if (a.pos.empty()) fail(name + " takes at least 1 argument");
      std::string sub = as_str(a.pos[0], "substring");
      if (name == "count") {
        if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(s)) + 1);
        int64_t n = 0;
        for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
        return Value::integer(n);
      }
      size_t hit = name == "rfind" ? s.rfind(sub) : s.find(sub);
      if (hit == std::string::npos) {
        if (name == "index") fail("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, hit))));
    });
  if (name == "format")
    return bound(name, [s](Interpreter& in, CallArgs& a) {
      std::string r = py_format(s, a);
      in.check_size(r.size());
      return Value::string(std::move(r));
    });
  if (name == "join")
    return bound(name, [s](Interpreter& in, CallArgs& a) {
      if (a.pos.empty()) fail("join takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& item : iterate(a.pos[0])) {
        if (!first) out += s;
        first = false;
        out += as_str(item, "join item");
        in.check_size(out.size());
      }
      return Value::string(std::move(out));
    });
  if (name == "removeprefix" || name == "removesuffix")
    return bound(name, [s, pre = name == "removeprefix"](Interpreter&, CallArgs& a) {
      if (a.pos.empty()) fail("removeprefix/removesuffix takes exactly one argument");
      std::string x = as_str(a.pos[0], "affix");
      if (!starts_or_ends(s, a.pos[0], pre)) return Value::string(s);
      return Value::string(pre ? s.substr(x.size()) : s.substr(0, s.size() - x.size()));
    });
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" ||
      name == "isupper" || name == "islower")
    return bound(name, [s, name](Interpreter&, CallArgs&) {
      auto cps = decode_utf8(s);
      if (cps.empty()) return Value::boolean(false);
      bool cased = false;
      for (uint32_t cp : cps) {
        bool digit = cp >= '0' && cp <= '9';
        bool alpha = is_alpha_cp(cp);
        if (name == "isdigit" && !digit) return Value::boolean(false);
        if (name == "isalpha" && !alpha) return Value::boolean(false);
        if (name == "isalnum" && !alpha && !digit) return Value::boolean(false);
        if (name == "isspace" && !is_py_space(cp)) return Value::boolean(false);
        if (name == "isupper" && alpha) {
          if (to_upper_cp(cp) != cp) return Value::boolean(false);
          cased = cased || to_lower_cp(cp) != cp;
        }
        if (name == "islower" && alpha) {
          if (to_lower_cp(cp) != cp) return Value::boolean(false);
          cased = cased || to_upper_cp(cp) != cp;
        }
      }
      if (name == "isupper" || name == "islower") return Value::boolean(cased);
      return Value::boolean(true);
    });
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& obj, const std::string& name) {
  auto d = obj.dict;
  if (name == "items")
    return bound(name, [d](Interpreter&, CallArgs&) {
      std::vector<Value> out;
      for (const auto& [k, v] : d->items) out.push_back(Value::make_list({k, v}, true));
      return Value::make_list(std::move(out));
    });
  if (name == "keys" || name == "values")
    return bound(name, [d, keys = name == "keys"](Interpreter&, CallArgs&) {
      std::vector<Value> out;
      for (const auto& [k, v] : d->items) out.push_back(keys ? k : v);
      return Value::make_list(std::move(out));
    });
  if (name == "get")
    return bound(name, [d](Interpreter&, CallArgs& a) {
      if (a.pos.empty()) fail("get expected at least 1 argument");
      if (const Value* v = d->find(a.pos[0])) return *v;
      return a.pos.size() > 1 ? a.pos[1] : Value::none();
    });
  static const char* kMutators[] = {"update", "pop", "popitem", "setdefault", "clear"};
  for (const char* m : kMutators)
    if (name == m) fail("access to attribute '" + name + "' of 'dict' object is unsafe");
  return Value();  // not a method: fall back to item lookup
}

void slice_indices(int64_t len, const Value& start, const Value& stop, const Value& step_v,
                   std::vector<int64_t>& out) {
  int64_t step = step_v.is_none() ? 1 : as_int(step_v, "slice step");
  if (step == 0) fail("slice step cannot be zero");
  auto norm = [&](const Value& v, int64_t dflt) -> int64_t {
    if (v.is_none()) return dflt;
    int64_t x = as_int(v, "slice index");
    if (x < 0)
      x = std::max<int64_t>(x + len, step < 0 ? -1 : 0);
    else
      x = std::min<int64_t>(x, step < 0 ? len - 1 : len);
    return x;
  };
  int64_t b = norm(start, step < 0 ? len - 1 : 0);
  int64_t e = norm(stop, step < 0 ? -1 : len);
  if (step > 0)
    for (int64_t k = b; k < e; k += step) out.push_back(k);
  else
    for (int64_t k = b; k > e; k += step) out.push_back(k);
}

}  // namespace

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return {};
    case Kind::List:
      return v.list->items;
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& [k, val] : v.dict->items) keys.push_back(k);
      return keys;
    }
    case Kind::String: {
      std::vector<Value> out;
      for (uint32_t cp : decode_utf8(v.s)) {
        std::string c;
        append_utf8(c, cp);
        out.push_back(Value::string(std::move(c)));
      }
      return out;
    }
    default:
      fail("'" + type_name(v) + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::Undefined:
      return false;
    case Kind::String:
      if (item.kind != Kind::String)
        fail("'in <string>' requires string as left operand, not " + type_name(item));
      return container.s.find(item.s) != std::string::npos;
    case Kind::List:
      for (const auto& x : container.list->items)
        if (equals(x, item)) return true;
      return false;
    case Kind::Dict:
      return container.dict->find(item) != nullptr;
    default:
      fail("argument of type '" + type_name(container) + "' is not iterable");
  }
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::Undefined:
      fail_undefined(obj);
    case Kind::String:
      return string_method(obj, name);
    case Kind::Dict: {
      Value m = dict_method(obj, name);
      if (!m.is_undefined()) return m;
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
      return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    case Kind::Namespace:
      if (const Value* v = obj.dict->find(std::string_view(name))) return *v;
      return Value::undefined("'Namespace object' has no attribute '" + name + "'");
    case Kind::List: {
      static const char* kMutators[] = {"append", "extend", "insert",  "pop",
                                        "remove", "sort",   "reverse", "clear"};
      for (const char* m : kMutators)
        if (name == m) fail("access to attribute '" + name + "' of 'list' object is unsafe");
      return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + name + "'");
    }
    default:
      return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + name + "'");
  }
}

Value get_item(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Kind::Undefined:
      fail_undefined(obj);
    case Kind::Dict:
      if (const Value* v = obj.dict->find(key)) return *v;
      if (key.kind == Kind::String) {
        Value m = dict_method(obj, key.s);
        if (!m.is_undefined()) return m;
      }
      return Value::undefined("'dict object' has no attribute " + to_repr(key));
    case Kind::List:
    case Kind::String: {
      if (key.kind == Kind::String) return get_attr(obj, key.s);
      if (key.kind != Kind::Int && key.kind != Kind::Bool)
        return Value::undefined("'" + object_desc(obj) + "' has no element " + to_repr(key));
      int64_t idx = key.kind == Kind::Bool ? key.b : key.i;
      if (obj.kind == Kind::List) {
        int64_t n = static_cast<int64_t>(obj.list->items.size());
        if (idx < 0) idx += n;
        if (idx < 0 || idx >= n)
          return Value::undefined("'" + object_desc(obj) + "' has no element " + to_repr(key));
        return obj.list->items[static_cast<size_t>(idx)];
      }
      auto cps = decode_utf8(obj.s);
      int64_t n = static_cast<int64_t>(cps.size());
      if (idx < 0) idx += n;
      if (idx < 0 || idx >= n)
        return Value::undefined("'str object' has no element " + to_repr(key));
      std::string c;
      append_utf8(c, cps[static_cast<size_t>(idx)]);
      return Value::string(std::move(c));
    }
    case Kind::Namespace:
      if (key.kind == Kind::String) return get_attr(obj, key.s);
      [[fallthrough]];
    default:
      return Value::undefined("'" + object_desc(obj) + "' has no element " + to_repr(key));
  }
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  std::vector<int64_t> idx;
  if (obj.kind == Kind::List) {
    slice_indices(static_cast<int64_t>(obj.list->items.size()), start, stop, step, idx);
    std::vector<Value> out;
    for (int64_t k : idx) out.push_back(obj.list->items[static_cast<size_t>(k)]);
    return Value::make_list(std::move(out), obj.list->tuple);
  }
  if (obj.kind == Kind::String) {
    auto cps = decode_utf8(obj.s);
    slice_indices(static_cast<int64_t>(cps.size()), start, stop, step, idx);
    std::string out;
    for (int64_t k : idx) append_utf8(out, cps[static_cast<size_t>(k)]);
    return Value::string(std::move(out));
  }
  if (obj.is_undefined()) fail_undefined(obj);
  fail("'" + type_name(obj) + "' object is not subscriptable");
}

namespace {

// Resolves jinja's `attribute=` argument: dotted path, integer parts index lists.
Value resolve_attribute(const Value& item, const std::string& path) {
  Value cur = item;
  size_t b = 0;
  while (b <= path.size()) {
    size_t e = path.find('.', b);
    if (e == std::string::npos) e = path.size();
    std::string part = path.substr(b, e - b);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = digits ? get_item(cur, Value::integer(std::stoll(part)))
                 : get_item(cur, Value::string(part));
    if (cur.is_undefined()) return cur;
    b = e + 1;
  }
  return cur;
}

int64_t length_of(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined:
      return 0;
    case Kind::String:
      return static_cast<int64_t>(utf8_length(v.s));
    case Kind::List:
      return static_cast<int64_t>(v.list->items.size());
    case Kind::Dict:
    case Kind::Namespace:
      return static_cast<int64_t>(v.dict->items.size());
    default:
      fail("object of type '" + type_name(v) + "' has no len()");
  }
}

Value lower_if_string(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.kind == Kind::String) return Value::string(map_case(v.s, false));
  return v;
}

double py_round(double x, int64_t digits) {
  if (!std::isfinite(x)) return x;
  if (digits == 0) return std::nearbyint(x);
  if (digits > 300 || digits < -300) return digits > 0 ? x : 0.0 * x;
  if (digits < 0) {
    double p = std::pow(10.0, static_cast<double>(-digits));
    return std::nearbyint(x / p) * p;
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(digits), x);  // exact, half-even
  return std::strtod(buf, nullptr);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string indent(const std::string& s, const Value* width, bool first, bool blank) {
  std::string ind = width && width->kind == Kind::String
                        ? width->s
                        : std::string(static_cast<size_t>(std::clamp<int64_t>(
                                          width ? as_int(*width, "width") : 4, 0, 1024)),
                                      ' ');
  std::string text = s + "\n";
  std::vector<std::string> lines;
  size_t b = 0;
  for (size_t k = 0; k < text.size(); ++k) {
    if (text[k] == '\n' || text[k] == '\r') {
      lines.push_back(text.substr(b, k - b));
      if (text[k] == '\r' && k + 1 < text.size() && text[k + 1] == '\n') ++k;
      b = k + 1;
    }
  }
  if (b < text.size()) lines.push_back(text.substr(b));
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv += "\n" + ind;
      rv += lines[k];
    }
  } else if (!lines.empty()) {
    rv = lines[0];
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : ind) + lines[k];
  }
  if (first) rv = ind + rv;
  return rv;
}

// select/reject/selectattr/rejectattr share this: test `args.pos[first_test_arg]`.
Value select_items(Interpreter& in, const Value& v, CallArgs& args, bool keep, bool by_attr) {
  size_t k = 0;
  std::string attr;
  if (by_attr) {
    if (args.pos.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = as_str(args.pos[0], "attribute");
    k = 1;
  }
  std::string test;
  CallArgs test_args;
  if (k < args.pos.size()) {
    test = as_str(args.pos[k], "test name");
    test_args.pos.assign(args.pos.begin() + static_cast<std::ptrdiff_t>(k + 1), args.pos.end());
  }
  std::vector<Value> out;
  for (const auto& item : iterate(v)) {
    in.step();
    Value subject = by_attr ? resolve_attribute(item, attr) : item;
    bool r = test.empty() ? truthy(subject) : apply_test(in, test, subject, test_args);
    if (r == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

std::vector<Value> sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                          const std::string& attribute) {
  auto key = [&](const Value& v) {
    return lower_if_string(attribute.empty() ? v : resolve_attribute(v, attribute), case_sensitive);
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    return reverse ? compare(key(b), key(a)) < 0 : compare(key(a), key(b)) < 0;
  });
  return items;
}

bool flag(const CallArgs& args, size_t index, const char* name, bool dflt) {
  const Value* v = args.get(index, name);
  return v ? truthy(*v) : dflt;
}

}  // namespace

Value apply_filter(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  const std::string& f = name;
  auto str_of = [&](const Value& x) {
    if (x.is_undefined()) return std::string();
    return to_str(x);
  };
  if (f == "default" || f == "d") {
    const Value* dflt = args.get(0, "default_value");
    bool boolean = flag(args, 1, "boolean", false);
    if (v.is_undefined() || (boolean && !truthy(v))) return dflt ? *dflt : Value::string("");
    return v;
  }
  if (f == "length" || f == "count") return Value::integer(length_of(v));
  if (f == "string") return Value::string(str_of(v));
  if (f == "safe") return v.kind == Kind::String ? v : Value::string(str_of(v));
  if (f == "trim") return Value::string(strip(str_of(v), args.get(0, "chars"), true, true));
  if (f == "upper" || f == "lower") return Value::string(map_case(str_of(v), f == "upper"));
  if (f == "capitalize") return Value::string(capitalize(str_of(v)));
  if (f == "title") return Value::string(jinja_title(str_of(v)));
  if (f == "escape" || f == "e") return Value::string(html_escape(str_of(v)));
  if (f == "replace") {
    if (args.pos.size() < 2) fail("replace filter needs old and new strings");
    const Value* c = args.get(2, "count");
    return Value::string(replace_all(str_of(v), str_of(args.pos[0]), str_of(args.pos[1]),
                                     c && !c->is_none() ? as_int(*c, "count") : -1, in));
  }
  if (f == "indent")
    return Value::string(indent(str_of(v), args.get(0, "width"), flag(args, 1, "first", false),
                                flag(args, 2, "blank", false)));
  if (f == "tojson") {
    const Value* ind = args.get(0, "indent");
    const Value* seps = args.get(2, "separators");
    bool sort_keys = flag(args, 3, "sort_keys", false);
    int indent_n = ind && !ind->is_none()
                       ? static_cast<int>(std::clamp<int64_t>(as_int(*ind, "indent"), 0, 64))
                       : -1;
    std::string item_sep = indent_n >= 0 ? "," : ", ", key_sep = ": ";
    if (seps && !seps->is_none()) {
      if (seps->kind != Kind::List || seps->list->items.size() != 2)
        fail("tojson: separators must be a pair of strings");
      item_sep = as_str(seps->list->items[0], "separator");
      key_sep = as_str(seps->list->items[1], "separator");
    }
    if (v.is_undefined()) fail_undefined(v);
    std::string out = to_json(v, indent_n, item_sep, key_sep, sort_keys);
    in.check_size(out.size());
    return Value::string(std::move(out));
  }
  if (f == "first" || f == "last") {
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No " + f + " item, sequence was empty.");
    return f == "first" ? items.front() : items.back();
  }
  if (f == "list") return Value::make_list(iterate(v));
  if (f == "reverse") {
    if (v.kind == Kind::String) {
      auto cps = decode_utf8(v.s);
      std::reverse(cps.begin(), cps.end());
      return Value::string(from_cps(cps, 0, cps.size()));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::make_list(std::move(items));
  }
  if (f == "join") {
    const Value* sep = args.get(0, "d");
    const Value* attr = args.get(1, "attribute");
    std::string s = sep ? str_of(*sep) : "";
    std::string out;
    bool first = true;
    for (const auto& item : iterate(v)) {
      if (!first) out += s;
      first = false;
      out += str_of(attr ? resolve_attribute(item, as_str(*attr, "attribute")) : item);
      in.check_size(out.size());
    }
    return Value::string(std::move(out));
  }
  if (f == "int") {
    const Value* dflt = args.get(0, "default");
    Value fallback = dflt ? *dflt : Value::integer(0);
    if (v.kind == Kind::Int) return v;
    if (v.kind == Kind::Bool) return Value::integer(v.b);
    if (v.kind == Kind::Float)
      return std::isfinite(v.f) && std::fabs(v.f) < 9.2e18
                 ? Value::integer(static_cast<int64_t>(v.f))
                 : fallback;
    if (v.kind == Kind::String) {
      std::string t = strip(v.s, nullptr, true, true);
      std::string digits;
      for (char c : t)
        if (c != '_') digits += c;
      char* end = nullptr;
      errno = 0;
      long long x = std::strtoll(digits.c_str(), &end, 10);
      if (!digits.empty() && end && *end == '\0' && errno == 0 &&
          t.find("__") == std::string::npos && t.front() != '_' && t.back() != '_')
        return Value::integer(x);
      double d = std::strtod(t.c_str(), &end);
      if (!t.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18)
        return Value::integer(static_cast<int64_t>(d));
    }
    return fallback;
  }
  if (f == "float") {
    const Value* dflt = args.get(0, "default");
    Value fallback = dflt ? *dflt : Value::number(0.0);
    if (v.is_number()) return Value::number(v.as_double());
    if (v.kind == Kind::String) {
      std::string t = strip(v.s, nullptr, true, true);
      char* end = nullptr;
      double d = std::strtod(t.c_str(), &end);
      if (!t.empty() && end && *end == '\0') return Value::number(d);
    }
    return fallback;
  }
  if (f == "abs") {
    if (v.kind == Kind::Int) {
      if (v.i == INT64_MIN) fail("integer overflow");
      return Value::integer(v.i < 0 ? -v.i : v.i);
    }
    if (v.kind == Kind::Bool) return Value::integer(v.b);
    if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
    fail("bad operand type for abs(): '" + type_name(v) + "'");
  }
  if (f == "round") {
    const Value* p = args.get(0, "precision");
    const Value* m = args.get(1, "method");
    int64_t precision = p ? as_int(*p, "precision") : 0;
    std::string method = m ? as_str(*m, "method") : "common";
    if (!v.is_number()) fail("round filter needs a number, not '" + type_name(v) + "'");
    if (method == "common") {
      if (v.kind != Kind::Float) return Value::integer(v.kind == Kind::Bool ? v.b : v.i);
      return Value::number(py_round(v.f, precision));
    }
    if (method != "ceil" && method != "floor") fail("round method must be common, ceil or floor");
    double mult = std::pow(10.0, static_cast<double>(precision));
    double x = v.as_double() * mult;
    return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / mult);
  }
  if (f == "items") {
    if (v.is_undefined()) return Value::make_list();
    if (v.kind != Kind::Dict) fail("items filter needs a mapping, not '" + type_name(v) + "'");
    std::vector<Value> out;
    for (const auto& [k, val] : v.dict->items) out.push_back(Value::make_list({k, val}, true));
    return Value::make_list(std::move(out));
  }
  if (f == "dictsort") {
    if (v.kind != Kind::Dict) fail("dictsort filter needs a mapping");
    bool cs = flag(args, 0, "case_sensitive", false);
    const Value* by = args.get(1, "by");
    bool reverse = flag(args, 2, "reverse", false);
    int pos = by && as_str(*by, "by") == "value" ? 1 : 0;
    std::vector<Value> out;
    for (const auto& [k, val] : v.dict->items) out.push_back(Value::make_list({k, val}, true));
    std::stable_sort(out.begin(), out.end(), [&](const Value& a, const Value& b) {
      int c = compare(lower_if_string(a.list->items[static_cast<size_t>(pos)], cs),
                      lower_if_string(b.list->items[static_cast<size_t>(pos)], cs));
      return reverse ? c > 0 : c < 0;
    });
    return Value::make_list(std::move(out));
  }
  if (f == "map") {
    std::vector<Value> out;
    const Value* attr = nullptr;
    for (const auto& [k, val] : args.kw)
      if (k == "attribute") attr = &val;
    if (attr) {
      const Value* dflt = nullptr;
      for (const auto& [k, val] : args.kw)
        if (k == "default") dflt = &val;
      for (const auto& item : iterate(v)) {
        Value r = resolve_attribute(item, as_str(*attr, "attribute"));
        out.push_back(r.is_undefined() && dflt ? *dflt : r);
      }
      return Value::make_list(std::move(out));
    }
    if (args.pos.empty()) fail("map filter needs a filter name or attribute=");
    std::string fname = as_str(args.pos[0], "filter name");
    CallArgs rest;
    rest.pos.assign(args.pos.begin() + 1, args.pos.end());
    rest.kw = args.kw;
    for (const auto& item : iterate(v)) {
      in.step();
      CallArgs a = rest;
      out.push_back(apply_filter(in, fname, item, a));
    }
    return Value::make_list(std::move(out));
  }
  if (f == "select" || f == "reject") return select_items(in, v, args, f == "select", false);
  if (f == "selectattr" || f == "rejectattr")
    return select_items(in, v, args, f == "selectattr", true);
  if (f == "unique") {
    bool cs = flag(args, 0, "case_sensitive", false);
    const Value* attr = args.get(1, "attribute");
    std::vector<Value> out, seen;
    for (const auto& item : iterate(v)) {
      in.step();
      Value key =
          lower_if_string(attr ? resolve_attribute(item, as_str(*attr, "attribute")) : item, cs);
      bool dup = false;
      for (const auto& s : seen) dup = dup || equals(s, key);
      if (!dup) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return Value::make_list(std::move(out));
  }
  if (f == "sort") {
    const Value* attr = args.get(2, "attribute");
    return Value::make_list(sorted(iterate(v), flag(args, 0, "reverse", false),
                                   flag(args, 1, "case_sensitive", false),
                                   attr ? as_str(*attr, "attribute") : ""));
  }
  if (f == "sum") {
    const Value* attr = args.get(0, "attribute");
    const Value* start = args.get(1, "start");
    Value total = start ? *start : Value::integer(0);
    for (const auto& item : iterate(v)) {
      Value x = attr ? resolve_attribute(item, as_str(*attr, "attribute")) : item;
      if (!x.is_number() || !total.is_number()) fail("sum filter needs numbers");
      if (x.kind == Kind::Float || total.kind == Kind::Float) {
        total = Value::number(total.as_double() + x.as_double());
      } else {
        int64_t r;
        if (__builtin_add_overflow(total.kind == Kind::Bool ? total.b : total.i,
                                   x.kind == Kind::Bool ? x.b : x.i, &r))
          fail("integer overflow");
        total = Value::integer(r);
      }
    }
    return total;
  }
  if (f == "min" || f == "max") {
    std::vector<Value> items =
        sorted(iterate(v), false, flag(args, 0, "case_sensitive", false), "");
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    return f == "min" ? items.front() : items.back();
  }
  if (f == "wordcount")
    return Value::integer(static_cast<int64_t>(split(str_of(v), nullptr, -1).size()));
  fail("unknown filter '" + f + "'");
}

bool apply_test(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  (void)in;
  const std::string& t = name;
  auto arg = [&](size_t k) -> const Value& {
    if (k >= args.pos.size()) fail("test '" + t + "' needs an argument");
    return args.pos[k];
  };
  if (t == "defined") return !v.is_undefined();
  if (t == "undefined") return v.is_undefined();
  if (t == "none") return v.is_none();
  if (t == "string") return v.kind == Kind::String;
  if (t == "number") return v.is_number();
  if (t == "integer") return v.kind == Kind::Int;
  if (t == "float") return v.kind == Kind::Float;
  if (t == "boolean") return v.kind == Kind::Bool;
  if (t == "mapping") return v.kind == Kind::Dict;
  if (t == "iterable")
    return v.kind == Kind::List || v.kind == Kind::Dict || v.kind == Kind::String ||
           v.is_undefined();
  if (t == "sequence")
    return v.kind == Kind::List || v.kind == Kind::Dict || v.kind == Kind::String;
  if (t == "callable") return v.kind == Kind::Callable;
  if (t == "true") return v.kind == Kind::Bool && v.b;
  if (t == "false") return v.kind == Kind::Bool && !v.b;
  if (t == "odd" || t == "even") {
    int64_t x = as_int(v, "odd/even test value");
    return ((x % 2) != 0) == (t == "odd");
  }
  if (t == "divisibleby") {
    int64_t d = as_int(arg(0), "divisor");
    if (d == 0) fail("integer division by zero");
    return as_int(v, "divisibleby test value") % d == 0;
  }
  if (t == "eq" || t == "equalto" || t == "==") return equals(v, arg(0));
  if (t == "ne" || t == "!=") return !equals(v, arg(0));
  if (t == "lt" || t == "lessthan" || t == "<") return compare(v, arg(0)) < 0;
  if (t == "le" || t == "<=") return compare(v, arg(0)) <= 0;
  if (t == "gt" || t == "greaterthan" || t == ">") return compare(v, arg(0)) > 0;
  if (t == "ge" || t == ">=") return compare(v, arg(0)) >= 0;
  if (t == "in") return contains(arg(0), v);
  if (t == "sameas") {
    const Value& o = arg(0);
    if (v.kind != o.kind) return false;
    if (v.kind == Kind::List) return v.list == o.list;
    if (v.kind == Kind::Dict || v.kind == Kind::Namespace) return v.dict == o.dict;
    return equals(v, o);
  }
  if (t == "lower" || t == "upper") {
    if (v.kind != Kind::String) return false;
    return map_case(v.s, t == "upper") == v.s;
  }
  fail("unknown test '" + t + "'");
}

Value make_globals() {
  Value g = Value::make_dict();
  auto def = [&](const char* name, std::function<Value(Interpreter&, CallArgs&)> fn) {
    g.dict->set(Value::string(name), Value::callable(name, std::move(fn)));
  };
  def("range", [](Interpreter& in, CallArgs& a) {
    if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 integer arguments");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = as_int(a.pos[0], "range argument");
    } else {
      start = as_int(a.pos[0], "range argument");
      stop = as_int(a.pos[1], "range argument");
      if (a.pos.size() == 3) step = as_int(a.pos[2], "range argument");
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    std::vector<Value> out;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (out.size() >= in.limits().max_range)
        fail("range() too large (more than " + std::to_string(in.limits().max_range) + " items)");
      out.push_back(Value::integer(k));
      if ((step > 0 && k > INT64_MAX - step) || (step < 0 && k < INT64_MIN - step)) break;
    }
    return Value::make_list(std::move(out));
  });
  def("namespace", [](Interpreter& in, CallArgs& a) {
    Value ns = Value::make_namespace();
    in.track_namespace(ns);
    for (const auto& p : a.pos) {
      if (p.kind != Kind::Dict) fail("namespace() positional argument must be a dict");
      for (const auto& [k, v] : p.dict->items) ns.dict->set(k, v);
    }
    for (const auto& [k, v] : a.kw) ns.dict->set(Value::string(k), v);
    return ns;
  });
  def("dict", [](Interpreter&, CallArgs& a) {
    Value d = Value::make_dict();
    for (const auto& p : a.pos) {
      if (p.kind != Kind::Dict) fail("dict() positional argument must be a dict");
      for (const auto& [k, v] : p.dict->items) d.dict->set(k, v);
    }
    for (const auto& [k, v] : a.kw) d.dict->set(Value::string(k), v);
    return d;
  });
  def("raise_exception", [](Interpreter&, CallArgs& a) -> Value {
    fail(a.pos.empty() ? std::string("raise_exception called") : to_str(a.pos[0]));
  });
  def("strftime_now", [](Interpreter&, CallArgs& a) {
    if (a.pos.empty()) fail("strftime_now expects a format string");
    std::string fmt = as_str(a.pos[0], "format");
    const auto now = static_cast<std::time_t>(platform::unix_seconds());
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    size_t n = fmt.size() < 64 ? std::strftime(buf, sizeof(buf), fmt.c_str(), &tm) : 0;
    return Value::string(std::string(buf, n));
  });
  return g;
}

}  // namespace hearth::engine::jinja
