// Values of the chat-template interpreter, with Python semantics where templates see them:
// str() and repr() text, truthiness, equality and ordering, float formatting.
//
// Lists, dicts and namespaces are shared by reference (as in Python), so a `namespace`
// mutated inside a loop is seen outside it. Strings are UTF-8; lengths and indices count
// code points, as Python's str does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hearth::engine::jinja {

// Raised inside the interpreter; ChatTemplate turns it into an Error value at its boundary.
struct JinjaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void fail(const std::string& message);

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

struct Value;
struct ListObj;
struct DictObj;
struct CallArgs;
class Interpreter;

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // String payload; for Undefined, the name that was missing
  std::shared_ptr<ListObj> list;
  std::shared_ptr<DictObj> dict;  // Dict and Namespace
  std::shared_ptr<Callable> fn;

  static Value undefined(std::string name = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(std::vector<Value> items = {}, bool tuple = false);
  static Value make_dict();
  static Value make_namespace();
  static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);
  static Value from_json(const nlohmann::ordered_json& j, int depth = 0);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_tuple() const;
  double as_double() const;  // numbers only
};

struct ListObj {
  std::vector<Value> items;
  bool tuple = false;
};

// Insertion-ordered mapping (Python dict); keys are usually strings.
struct DictObj {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value value);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Argument `index`/`name` (positional first, then keyword), or nullptr.
  const Value* get(size_t index, std::string_view name) const;
};

std::string type_name(const Value& v);        // Python type name: 'str', 'int', 'NoneType' ...
bool truthy(const Value& v);                  // Python bool()
bool equals(const Value& a, const Value& b);  // Python ==
int compare(const Value& a, const Value& b);  // Python <, as -1/0/1; fails on mixed types
std::string to_str(const Value& v);           // Python str()
std::string to_repr(const Value& v);          // Python repr()
std::string float_repr(double v);             // Python repr(float)
// json.dumps(v, ensure_ascii=false, indent=indent, separators=..., sort_keys=...).
std::string to_json(const Value& v, int indent, std::string_view item_sep, std::string_view key_sep,
                    bool sort_keys);

// UTF-8 helpers: strings index by code point as in Python.
std::vector<uint32_t> decode_utf8(std::string_view s);
void append_utf8(std::string& out, uint32_t cp);
size_t utf8_length(std::string_view s);
bool is_py_space(uint32_t cp);
uint32_t to_upper_cp(uint32_t cp);
uint32_t to_lower_cp(uint32_t cp);
bool is_alpha_cp(uint32_t cp);

}  // namespace hearth::engine::jinja
