// The invariants written at the top of app/model_store.h, one test each.
#include "app/model_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "../support/default_model.h"

namespace hearth::app {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

using test_support::default_model;

int64_t mtime_ns_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

void set_mtime_ns(const std::string& path, int64_t ns) {
  const struct timespec t[2] = {{ns / 1000000000, ns % 1000000000},
                                {ns / 1000000000, ns % 1000000000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, 0), 0) << path;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
  ASSERT_TRUE(f.good()) << path;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename().string());
  return out;
}

struct ModelStoreInvariants : ::testing::Test {
  std::string dir;
  void SetUp() override {
    char tmpl[] = "/tmp/hearth-model-store-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    fs::create_directories(dir + "/blobs");
    fs::create_directories(dir + "/manifests");
  }
  void TearDown() override { fs::remove_all(dir); }

  // A stored version written by hand: the blob under its hash and a manifest recording
  // its size and mtime as an import would. `blob` overrides the manifest's blob field.
  std::string add(const std::string& name, const std::string& bytes, std::string blob = "") {
    const std::string hash = sha256_hex(bytes);
    const std::string path = dir + "/blobs/sha256-" + hash;
    write_bytes(path, bytes);
    if (blob.empty()) blob = "blobs/sha256-" + hash;
    const json version{{"version", 1},
                       {"sha256", hash},
                       {"blob", blob},
                       {"size", bytes.size()},
                       {"architecture", "llama"},
                       {"quantization", "Q4_1"},
                       {"source", "/nowhere/model.gguf"},
                       {"imported_at", 1},
                       {"verified_at", 1},
                       {"mtime_ns", mtime_ns_of(path)},
                       {"state", "verified"}};
    const json m{{"format", "hearth-model-manifest-v1"},
                 {"name", name},
                 {"versions", json::array({version})}};
    write_bytes(dir + "/manifests/" + name + ".json", m.dump(2));
    return path;
  }
};

// Invariant: a manifest's blob is always blobs/sha256-<its sha256>; anything else is
// rejected when read.
TEST_F(ModelStoreInvariants, ManifestPointingAnywhereButItsOwnBlobIsRejected) {
  add("good", "the good bytes");
  const std::string other = sha256_hex("other bytes");
  add("escape", "escape bytes", "../../../etc/passwd");
  add("absolute", "absolute bytes", "/etc/passwd");
  add("other-hash", "other-hash bytes", "blobs/sha256-" + other);
  ModelStore store(dir);
  ASSERT_TRUE(store.get("good")) << store.get("good").error();
  for (const char* name : {"escape", "absolute", "other-hash"}) {
    auto m = store.get(name);
    ASSERT_FALSE(m) << name;
    EXPECT_NE(m.error().find("refusing a manifest that points elsewhere"), std::string::npos)
        << m.error();
    EXPECT_FALSE(store.path_for_load(name)) << name;
  }
  EXPECT_FALSE(store.list());  // a listing does not skip over a bad manifest either
}

// Invariant: names are 1..64 characters of [A-Za-z0-9._+-], not starting with '.'.
TEST_F(ModelStoreInvariants, NamesAreOneToSixtyFourSafeCharacters) {
  EXPECT_TRUE(ModelStore::validate_name("a"));
  EXPECT_TRUE(ModelStore::validate_name("Az09._+-"));
  EXPECT_TRUE(ModelStore::validate_name(std::string(64, 'm')));
  EXPECT_FALSE(ModelStore::validate_name(""));
  EXPECT_FALSE(ModelStore::validate_name(std::string(65, 'm')));
  EXPECT_FALSE(ModelStore::validate_name(".hidden"));
  for (char c = 1; c < 127; ++c) {
    const bool allowed = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                         c == '+' || c == '-';
    EXPECT_EQ(static_cast<bool>(ModelStore::validate_name(std::string("m") + c + "m")), allowed)
        << "character " << int(c);
  }
  EXPECT_FALSE(ModelStore::validate_name("caf\xC3\xA9"));
  // A name is never a way out of the store.
  ModelStore store(dir);
  EXPECT_FALSE(store.get("../manifests/x"));
  EXPECT_FALSE(store.has("../x"));
}

// Invariant: a version whose blob no longer hashes to its sha256 is marked "changed" and
// refuses to load until `verify` finds the recorded hash again.
TEST_F(ModelStoreInvariants, ChangedBlobRefusesToLoadUntilVerifyFindsItsHash) {
  const std::string original = "model bytes, version one";
  const std::string blob = add("m", original);
  ModelStore store(dir);
  ASSERT_TRUE(store.path_for_load("m"));

  write_bytes(blob, original + " and some more");  // another size: hashed again at load
  auto refused = store.path_for_load("m");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("no longer matches"), std::string::npos) << refused.error();
  ASSERT_TRUE(store.get("m"));
  EXPECT_TRUE(store.get("m")->current().changed);

  write_bytes(blob, original);  // the bytes are back, but only verify clears the mark
  EXPECT_FALSE(store.path_for_load("m"));
  EXPECT_TRUE(store.get("m")->current().changed);
  auto report = store.verify("m");
  ASSERT_TRUE(report) << report.error();
  EXPECT_TRUE(report->ok) << report->detail;
  EXPECT_FALSE(store.get("m")->current().changed);
  auto loaded = store.path_for_load("m");
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(*loaded, blob);
}

// Invariant: loading checks the blob's size and mtime against those recorded at the last
// hash; when either differs the blob is hashed again before it may load.
TEST_F(ModelStoreInvariants, LoadHashesAgainExactlyWhenSizeOrMtimeDiffer) {
  const std::string original = "0123456789abcdef";
  const std::string blob = add("m", original);
  ModelStore store(dir);
  const int64_t recorded = store.get("m")->current().mtime_ns;

  // Same bytes, another mtime: hashed again (and found good), the new mtime recorded.
  set_mtime_ns(blob, recorded + 5'000'000'000);
  ASSERT_TRUE(store.path_for_load("m"));
  EXPECT_EQ(store.get("m")->current().mtime_ns, recorded + 5'000'000'000);
  EXPECT_GT(store.get("m")->current().verified_at, 1);

  // Other bytes of the same size under the recorded mtime: not hashed, so it loads.
  write_bytes(blob, "fedcba9876543210");
  set_mtime_ns(blob, recorded + 5'000'000'000);
  EXPECT_TRUE(store.path_for_load("m"));

  // Those bytes with only the mtime moved: hashed, found changed, refused.
  set_mtime_ns(blob, recorded + 9'000'000'000);
  EXPECT_FALSE(store.path_for_load("m"));
  EXPECT_TRUE(store.get("m")->current().changed);
}

// Invariant: manifests are written atomically (temp file, fsync, rename); a blob enters
// blobs/ only under its final name after its bytes were hashed.
TEST_F(ModelStoreInvariants, OnlyFinalNamesAreLeftInTheStore) {
  if (!fs::exists(default_model())) GTEST_SKIP() << default_model() << " not present";
  ModelStore store(dir);
  const std::string wrong(64, '0');
  auto refused = store.import(default_model(), "smol", nullptr, wrong);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("sha256 mismatch"), std::string::npos) << refused.error();
  EXPECT_TRUE(files_in(dir + "/blobs").empty());  // no temp file, no blob under any name
  EXPECT_TRUE(files_in(dir + "/manifests").empty());

  auto v = store.import(default_model(), "smol");
  ASSERT_TRUE(v) << v.error();
  EXPECT_EQ(files_in(dir + "/blobs"), std::set<std::string>{"sha256-" + v->sha256});
  auto hash = sha256_file(store.blob_path(v->sha256));
  ASSERT_TRUE(hash) << hash.error();
  EXPECT_EQ(*hash, v->sha256);
  EXPECT_EQ(files_in(dir + "/manifests"), std::set<std::string>{"smol.json"});

  auto report = store.verify("smol");  // rewrites the manifest
  ASSERT_TRUE(report) << report.error();
  EXPECT_EQ(files_in(dir + "/manifests"), std::set<std::string>{"smol.json"});
  std::ifstream f(dir + "/manifests/smol.json");
  const json m = json::parse(f, nullptr, false);
  ASSERT_FALSE(m.is_discarded());
  EXPECT_EQ(m["versions"][0]["blob"], "blobs/sha256-" + v->sha256);
}

}  // namespace
}  // namespace hearth::app
