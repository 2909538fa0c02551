#include "app/config.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <toml++/toml.h>

#include "app/paths.h"
#include "platform/secure_file.h"

namespace hearth::app {
namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

std::string type_name(toml::node_type t) {
  switch (t) {
  case toml::node_type::table:
    return "a table";
  case toml::node_type::array:
    return "an array";
  case toml::node_type::string:
    return "a string";
  case toml::node_type::integer:
    return "an integer";
  case toml::node_type::floating_point:
    return "a number";
  case toml::node_type::boolean:
    return "a boolean";
  default:
    return "a date or time";
  }
}

// Text as it may be printed in a one-line message: control bytes become '?',
// long text is cut.
std::string printable(std::string_view text, size_t max = 64) {
  std::string out(text.substr(0, max));
  for (char &c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  return text.size() > max ? out + "..." : out;
}

// Reads the keys of one table, each into its field; anything else is an error.
class TableReader {
public:
  TableReader(const std::string &source, std::string prefix)
      : source_(source), prefix_(std::move(prefix)) {}

  Error error(const toml::node &n, const std::string &key,
              const std::string &what) const {
    return make_error("{}:{}: key '{}{}' {}", source_, n.source().begin.line,
                      prefix_, printable(key), what);
  }

  Status read_bool(const toml::node &n, const std::string &key,
                   bool &out) const {
    if (!n.is_boolean())
      return error(n, key, "must be true or false, not " + type_name(n.type()));
    out = n.as_boolean()->get();
    return Status::ok();
  }

  template <typename Int>
  Status read_int(const toml::node &n, const std::string &key, int64_t lo,
                  int64_t hi, std::optional<Int> &out) const {
    if (!n.is_integer())
      return error(n, key, "must be an integer, not " + type_name(n.type()));
    const int64_t v = n.as_integer()->get();
    if (v < lo || v > hi)
      return error(n, key,
                   fmt::format("is {}, out of range ({} to {})", v, lo, hi));
    out = static_cast<Int>(v);
    return Status::ok();
  }

  Status read_string(const toml::node &n, const std::string &key,
                     std::optional<std::string> &out) const {
    if (!n.is_string())
      return error(n, key, "must be a string, not " + type_name(n.type()));
    std::string v = n.as_string()->get();
    if (v.empty())
      return error(n, key,
                   "must not be empty (leave the key out for the default)");
    out = std::move(v);
    return Status::ok();
  }

private:
  const std::string &source_;
  std::string prefix_;
};

Status read_serve(const toml::table &t, const std::string &source,
                  ServeConfig &out) {
  const TableReader r(source, "serve.");
  for (const auto &[k, node] : t) {
    const std::string key(k.str());
    Status s;
    if (key == "port")
      s = r.read_int(node, key, 0, 65535, out.port);
    else if (key == "listen")
      s = r.read_string(node, key, out.listen);
    else if (key == "parallel")
      s = r.read_int(node, key, 1, 64, out.parallel);
    else if (key == "cors_origin")
      s = r.read_string(node, key, out.cors_origin);
    else
      s = r.error(node, key,
                  "is not a setting Hearth knows (known in [serve]: port, "
                  "listen, parallel, "
                  "cors_origin)");
    if (!s)
      return s;
  }
  return Status::ok();
}

} // namespace

std::string config_path() {
  const char *env = std::getenv("HEARTH_CONFIG");
  if (env && *env)
    return env;
  return config_dir() + "/config.toml";
}

Expected<Config> parse_config(std::string_view text,
                              const std::string &source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error &e) {
    return make_error("{}:{}: not valid TOML: {}", source,
                      e.source().begin.line, printable(e.description(), 200));
  }
  Config c;
  c.path = source;
  const TableReader r(source, "");
  for (const auto &[k, node] : root) {
    const std::string key(k.str());
    Status s;
    if (key == "require_signed") {
      s = r.read_bool(node, key, c.require_signed);
    } else if (key == "require_sandbox") {
      s = r.read_bool(node, key, c.require_sandbox);
    } else if (key == "default_model") {
      s = r.read_string(node, key, c.default_model);
    } else if (key == "threads") {
      s = r.read_int(node, key, 1, 1024, c.threads);
    } else if (key == "ctx") {
      s = r.read_int(node, key, 1, int64_t{1} << 30, c.ctx);
    } else if (key == "serve") {
      if (!node.is_table())
        s = r.error(node, key,
                    "must be a table ([serve]), not " + type_name(node.type()));
      else
        s = read_serve(*node.as_table(), source, c.serve);
    } else {
      s = r.error(node, key,
                  "is not a setting Hearth knows (known: require_signed, "
                  "require_sandbox, "
                  "default_model, threads, ctx, [serve]); see README.md, "
                  "\"Configuration file\"");
    }
    if (!s)
      return Error{s.error()};
  }
  return c;
}

Expected<Config> read_config(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Config{};
    return make_error("{}: cannot read the config file: {}", path,
                      std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode))
    return make_error("{}: the config file is not a regular file", path);
  if (static_cast<uint64_t>(st.st_size) > kMaxConfigBytes)
    return make_error(
        "{}: the config file is over 1 MiB; it cannot be a Hearth config",
        path);
  auto text = platform::read_file(path, kMaxConfigBytes);
  if (!text)
    return Error{text.error()};
  return parse_config(*text, path);
}

const Expected<Config> &load_config() {
  static const Expected<Config> config = read_config(config_path());
  return config;
}

} // namespace hearth::app
