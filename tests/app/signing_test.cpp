// Model signatures and trusted keys (app/signing.h). The manifests here are
// written by hand (the signature covers the manifest's identity, not the GGUF
// bytes, which the store's hash already binds), so no model file is needed.
#include "app/signing.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/crypto.h"

namespace hearth::app {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string sha_of(char c) { return std::string(64, c); }

class Signing : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ =
        ::testing::TempDir() + "/hearth-signing-" + std::to_string(::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ + "/manifests");
    store_ = std::make_unique<ModelStore>(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A manifest with one version per hash, the last one current.
  void write_manifest(const std::string &name,
                      const std::vector<std::string> &hashes,
                      uint64_t size = 1000) {
    json versions = json::array();
    int n = 0;
    for (const auto &h : hashes)
      versions.push_back({{"version", ++n},
                          {"sha256", h},
                          {"blob", "blobs/sha256-" + h},
                          {"size", size},
                          {"architecture", "llama"},
                          {"quantization", "F32"},
                          {"source", "/x.gguf"},
                          {"imported_at", 1},
                          {"verified_at", 1},
                          {"mtime_ns", 1},
                          {"state", "verified"}});
    const json j{{"format", "hearth-model-manifest-v1"},
                 {"name", name},
                 {"versions", versions}};
    std::ofstream(dir_ + "/manifests/" + name + ".json") << j.dump(2);
  }

  SignatureCheck check(const std::string &name) {
    auto m = store_->get(name);
    EXPECT_TRUE(m) << m.error();
    auto trusted = load_trusted_keys(dir_);
    EXPECT_TRUE(trusted) << trusted.error();
    auto c = check_signature(*store_, *m, *trusted);
    EXPECT_TRUE(c) << c.error();
    return c ? *c : SignatureCheck{};
  }

  json read_sig(const std::string &name) {
    std::ifstream f(store_->signature_path(name));
    std::stringstream ss;
    ss << f.rdbuf();
    return json::parse(ss.str());
  }
  void write_sig(const std::string &name, const json &j) {
    std::ofstream(store_->signature_path(name)) << j.dump(2);
  }

  PublicKey keygen_and_trust() {
    auto pk = generate_signing_key(dir_, true);
    EXPECT_TRUE(pk) << pk.error();
    EXPECT_TRUE(trust_key(dir_, *pk, "me"));
    return *pk;
  }

  std::string dir_;
  std::unique_ptr<ModelStore> store_;
};

TEST(PublicKeyText, RoundTripsAndRejectsBadForms) {
  PublicKey k;
  for (size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<unsigned char>(i * 7);
  const std::string text = format_public_key(k);
  EXPECT_EQ(text.substr(0, 8), "ed25519:");
  EXPECT_EQ(text.size(), 8u + 64u);
  auto back = parse_public_key(text);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(*back, k);
  for (const std::string &bad :
       {std::string(""), text.substr(8), "ed25519:" + text.substr(9),
        text + "00", "ed448:" + text.substr(8),
        "ed25519:" + std::string(63, 'a') + "g",
        std::string("ED25519:") + text.substr(8)}) {
    auto p = parse_public_key(bad);
    EXPECT_FALSE(p) << bad;
    if (!p) {
      EXPECT_NE(p.error().find("not a public key"), std::string::npos);
    }
  }
}

TEST(SigningMessage, HasADomainPrefixAndTheIdentity) {
  ModelVersion v;
  v.version = 3;
  v.sha256 = sha_of('a');
  v.size = 42;
  const std::string m = signing_message("tiny", v);
  EXPECT_EQ(m.rfind("hearth-model-signature-v1\n", 0), 0u);
  EXPECT_NE(m.find("name=tiny\n"), std::string::npos);
  EXPECT_NE(m.find("version=3\n"), std::string::npos);
  EXPECT_NE(m.find("sha256=" + sha_of('a') + "\n"), std::string::npos);
  EXPECT_NE(m.find("size=42\n"), std::string::npos);
}

TEST_F(Signing, KeygenWritesA0600KeyAndRefusesToOverwrite) {
  auto a = generate_signing_key(dir_, false);
  ASSERT_TRUE(a) << a.error();
  struct stat st {};
  ASSERT_EQ(::stat(signing_key_path(dir_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = generate_signing_key(dir_, false);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find("--force"), std::string::npos);
  auto pk = signing_public_key(dir_);
  ASSERT_TRUE(pk);
  EXPECT_EQ(*pk, *a); // unchanged by the refused attempt
  auto b = generate_signing_key(dir_, true);
  ASSERT_TRUE(b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*signing_public_key(dir_), *b);
}

TEST_F(Signing, UnsignedThenUntrustedThenTrusted) {
  write_manifest("a", {sha_of('a')});
  EXPECT_EQ(check("a").state, SignatureState::kUnsigned);
  auto no_key = sign_model(*store_, "a");
  ASSERT_FALSE(no_key);
  EXPECT_NE(no_key.error().find("hearth keygen"), std::string::npos);

  auto pk = generate_signing_key(dir_, false);
  ASSERT_TRUE(pk);
  auto signer = sign_model(*store_, "a");
  ASSERT_TRUE(signer) << signer.error();
  EXPECT_EQ(*signer, *pk);
  EXPECT_EQ(check("a").state, SignatureState::kUntrusted);
  ASSERT_TRUE(trust_key(dir_, *pk, "laptop"));
  const SignatureCheck c = check("a");
  EXPECT_EQ(c.state, SignatureState::kTrusted);
  EXPECT_NE(c.signer.find("laptop"), std::string::npos);
  auto removed = untrust_key(dir_, "laptop");
  ASSERT_TRUE(removed) << removed.error();
  EXPECT_EQ(check("a").state, SignatureState::kUntrusted);
}

TEST_F(Signing, TamperedSignatureIsInvalid) {
  write_manifest("a", {sha_of('a')});
  keygen_and_trust();
  ASSERT_TRUE(sign_model(*store_, "a"));
  json j = read_sig("a");
  std::string s = j["signatures"][0]["signature"];
  s[10] = s[10] == '0' ? '1' : '0';
  j["signatures"][0]["signature"] = s;
  write_sig("a", j);
  const SignatureCheck c = check("a");
  EXPECT_EQ(c.state, SignatureState::kInvalid);
  EXPECT_NE(c.detail.find("does not verify"), std::string::npos);
}

TEST_F(Signing, SignatureUnderAnotherKeyNameIsInvalid) {
  write_manifest("a", {sha_of('a')});
  keygen_and_trust();
  ASSERT_TRUE(sign_model(*store_, "a"));
  // A second trusted key, claimed as the signer of a signature the first key
  // made.
  PublicKey other;
  std::string sk(crypto_sign_SECRETKEYBYTES, '\0');
  crypto_sign_keypair(other.data(),
                      reinterpret_cast<unsigned char *>(sk.data()));
  ASSERT_TRUE(trust_key(dir_, other, "other"));
  json j = read_sig("a");
  j["signatures"][0]["key"] = format_public_key(other);
  write_sig("a", j);
  EXPECT_EQ(check("a").state, SignatureState::kInvalid);
}

TEST_F(Signing, SignatureOfAnotherModelDoesNotApply) {
  // Same bytes under another name: the signature names "a", so it fails for
  // "b".
  write_manifest("a", {sha_of('a')});
  write_manifest("b", {sha_of('a')});
  write_manifest("c", {sha_of('c')});
  keygen_and_trust();
  ASSERT_TRUE(sign_model(*store_, "a"));
  EXPECT_EQ(check("a").state, SignatureState::kTrusted);
  fs::copy_file(store_->signature_path("a"), store_->signature_path("b"));
  EXPECT_EQ(check("b").state, SignatureState::kInvalid);
  // Other bytes: the signature is for another hash and does not count.
  fs::copy_file(store_->signature_path("a"), store_->signature_path("c"));
  EXPECT_EQ(check("c").state, SignatureState::kUnsigned);
}

TEST_F(Signing, ChangedManifestIdentityIsInvalid) {
  write_manifest("a", {sha_of('a')}, 1000);
  keygen_and_trust();
  ASSERT_TRUE(sign_model(*store_, "a"));
  write_manifest("a", {sha_of('a')}, 1001); // same hash and version, other size
  EXPECT_EQ(check("a").state, SignatureState::kInvalid);
}

TEST_F(Signing, EachVersionNeedsItsOwnSignature) {
  write_manifest("a", {sha_of('a')});
  keygen_and_trust();
  ASSERT_TRUE(sign_model(*store_, "a"));
  write_manifest("a", {sha_of('a'), sha_of('b')}); // an update: version 2
  EXPECT_EQ(check("a").state, SignatureState::kUnsigned);
  ASSERT_TRUE(sign_model(*store_, "a"));
  EXPECT_EQ(check("a").state, SignatureState::kTrusted);
  EXPECT_EQ(read_sig("a")["signatures"].size(),
            2u);                      // version 1's is kept for a rollback
  write_manifest("a", {sha_of('a')}); // rolled back
  EXPECT_EQ(check("a").state, SignatureState::kTrusted);
  ASSERT_TRUE(
      sign_model(*store_, "a")); // signing again replaces, never piles up
  EXPECT_EQ(read_sig("a")["signatures"].size(), 2u);
}

TEST_F(Signing, CorruptFilesAreErrorsNotCrashes) {
  write_manifest("a", {sha_of('a')});
  for (const char *bad :
       {"", "{", "[]", "{\"format\": \"other\"}",
        "{\"format\": \"hearth-model-signatures-v1\", \"signatures\": 3}",
        "{\"format\": \"hearth-model-signatures-v1\", \"signatures\": [{}]}",
        "{\"format\": \"hearth-model-signatures-v1\", \"signatures\": "
        "[{\"version\": 1, \"sha256\": \"x\", \"key\": \"ed25519:00\", "
        "\"signature\": \"00\"}]}"}) {
    std::ofstream(store_->signature_path("a")) << bad;
    const SignatureCheck c = check("a");
    EXPECT_EQ(c.state, SignatureState::kInvalid) << bad;
    EXPECT_FALSE(c.detail.empty()) << bad;
  }
  std::ofstream(dir_ + "/trusted_keys.json")
      << "{\"format\": \"hearth-trusted-keys-v1\", \"keys\": [1]}";
  auto t = load_trusted_keys(dir_);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().find("trusted_keys.json"), std::string::npos);
  std::ofstream(signing_key_path(dir_)) << "ed25519-secret:abcd\n";
  EXPECT_FALSE(signing_public_key(dir_));
}

TEST_F(Signing, TrustListAddsRenamesAndRemoves) {
  PublicKey k{};
  k[0] = 1;
  EXPECT_TRUE(load_trusted_keys(dir_)->empty());
  ASSERT_TRUE(trust_key(dir_, k, "alice"));
  ASSERT_TRUE(trust_key(
      dir_, k, "alice's laptop")); // same key: renamed, not added twice
  auto keys = load_trusted_keys(dir_);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].name, "alice's laptop");
  EXPECT_FALSE(trust_key(dir_, k, "bad\nlabel"));
  EXPECT_FALSE(trust_key(dir_, k, std::string(65, 'x')));
  EXPECT_FALSE(untrust_key(dir_, "nobody"));
  auto gone = untrust_key(dir_, format_public_key(k));
  ASSERT_TRUE(gone) << gone.error();
  EXPECT_TRUE(load_trusted_keys(dir_)->empty());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/trusted_keys.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Signing, ChangedModelCannotBeSigned) {
  write_manifest("a", {sha_of('a')});
  json j = json::parse(std::ifstream(dir_ + "/manifests/a.json"));
  j["versions"][0]["state"] = "changed";
  std::ofstream(dir_ + "/manifests/a.json") << j.dump();
  keygen_and_trust();
  auto s = sign_model(*store_, "a");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("no longer matches"), std::string::npos);
}

} // namespace
} // namespace hearth::app
