// The config file (app/config.h): every key, defaults, and crafted bad files.
#include "app/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace hearth::app {
namespace {

Expected<Config> parse(const std::string &text) {
  return parse_config(text, "config.toml");
}

TEST(Config, EmptyFileGivesDefaults) {
  auto c = parse("");
  ASSERT_TRUE(c) << c.error();
  EXPECT_FALSE(c->require_signed);
  EXPECT_FALSE(c->require_sandbox);
  EXPECT_FALSE(c->default_model);
  EXPECT_FALSE(c->threads);
  EXPECT_FALSE(c->ctx);
  EXPECT_FALSE(c->serve.port);
  EXPECT_FALSE(c->serve.listen);
  EXPECT_FALSE(c->serve.parallel);
  EXPECT_FALSE(c->serve.cors_origin);
}

TEST(Config, ReadsEveryKey) {
  auto c = parse(R"(# a comment
require_signed = true
require_sandbox = true
default_model = "tiny"
threads = 3
ctx = 2048

[serve]
port = 8080
listen = "0.0.0.0"
parallel = 4
cors_origin = "http://localhost:3000"
)");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->path, "config.toml");
  EXPECT_TRUE(c->require_signed);
  EXPECT_TRUE(c->require_sandbox);
  EXPECT_EQ(*c->default_model, "tiny");
  EXPECT_EQ(*c->threads, 3);
  EXPECT_EQ(*c->ctx, 2048);
  EXPECT_EQ(*c->serve.port, 8080);
  EXPECT_EQ(*c->serve.listen, "0.0.0.0");
  EXPECT_EQ(*c->serve.parallel, 4);
  EXPECT_EQ(*c->serve.cors_origin, "http://localhost:3000");
}

TEST(Config, DottedKeysAndInlineTablesAreTheSameTable) {
  auto a = parse("serve.port = 1234\n");
  ASSERT_TRUE(a) << a.error();
  EXPECT_EQ(*a->serve.port, 1234);
  auto b = parse("serve = { parallel = 8 }\n");
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(*b->serve.parallel, 8);
}

// Each bad file: the error names the file, the line and the key, on one line.
struct Bad {
  const char *text;
  const char *expect; // a part of the message
};

TEST(Config, RejectsCraftedBadFiles) {
  const Bad cases[] = {
      {"require_signd = true\n",
       "config.toml:1: key 'require_signd' is not a setting"},
      {"\n\nthreads = \"four\"\n",
       "config.toml:3: key 'threads' must be an integer, not a string"},
      {"require_signed = \"yes\"\n",
       "key 'require_signed' must be true or false"},
      {"require_signed = 1\n",
       "key 'require_signed' must be true or false, not an integer"},
      {"threads = 0\n", "key 'threads' is 0, out of range (1 to 1024)"},
      {"threads = 99999999999\n", "out of range"},
      {"ctx = -5\n", "key 'ctx' is -5, out of range"},
      {"ctx = 1.5\n", "key 'ctx' must be an integer, not a number"},
      {"default_model = \"\"\n", "key 'default_model' must not be empty"},
      {"default_model = [\"a\"]\n", "must be a string, not an array"},
      {"[serve]\nport = 70000\n",
       "config.toml:2: key 'serve.port' is 70000, out of range"},
      {"[serve]\nprot = 1\n",
       "config.toml:2: key 'serve.prot' is not a setting"},
      {"[serve]\nparallel = 0\n", "key 'serve.parallel' is 0"},
      {"serve = 3\n", "key 'serve' must be a table"},
      {"[other]\nx = 1\n", "key 'other' is not a setting"},
      {"threads = 2\nthreads = 3\n", "config.toml:2: not valid TOML"},
      {"threads = \n", "config.toml:1: not valid TOML"},
      {"[serve\n", "not valid TOML"},
      {"x = \"\xff\xfe\"\n", "not valid TOML"},
      {"when = 1979-05-27\n", "key 'when' is not a setting"},
      {"\"a\\nb\" = 1\n",
       "key 'a?b' is not a setting"}, // no line break in the message
  };
  for (const Bad &b : cases) {
    auto c = parse(b.text);
    ASSERT_FALSE(c) << b.text;
    EXPECT_NE(c.error().find(b.expect), std::string::npos)
        << b.text << " -> " << c.error();
    EXPECT_EQ(c.error().find('\n'), std::string::npos) << c.error();
  }
}

TEST(Config, DeepNestingAndNulBytesAreErrorsNotCrashes) {
  std::string deep =
      "a = " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  EXPECT_FALSE(parse(deep));
  EXPECT_FALSE(parse(std::string("threads = 1\0\n", 14)));
}

class ConfigFile : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("hearth-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string &name, const std::string &text) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p) << text;
    return p;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigFile, MissingFileIsEveryDefault) {
  auto c = read_config((dir_ / "absent.toml").string());
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->path.empty());
  EXPECT_FALSE(c->require_signed);
}

TEST_F(ConfigFile, ErrorsNameThePath) {
  const std::string p = write("bad.toml", "ctx = true\n");
  auto c = read_config(p);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find(p + ":1: key 'ctx'"), std::string::npos)
      << c.error();
  auto d = read_config(dir_.string()); // a directory
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().find("not a regular file"), std::string::npos)
      << d.error();
}

TEST_F(ConfigFile, RefusesHugeFiles) {
  const std::string p =
      write("big.toml", "# " + std::string(2 << 20, 'x') + "\n");
  auto c = read_config(p);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("over 1 MiB"), std::string::npos) << c.error();
}

TEST_F(ConfigFile, PathFromEnvironment) {
  const char *old = std::getenv("HEARTH_CONFIG");
  const std::string saved = old ? old : "";
  ::setenv("HEARTH_CONFIG", "/some/where/hearth.toml", 1);
  EXPECT_EQ(config_path(), "/some/where/hearth.toml");
  ::unsetenv("HEARTH_CONFIG");
  ::setenv("XDG_CONFIG_HOME", dir_.c_str(), 1);
  EXPECT_EQ(config_path(), (dir_ / "hearth" / "config.toml").string());
  if (old)
    ::setenv("HEARTH_CONFIG", saved.c_str(), 1);
}

} // namespace
} // namespace hearth::app
