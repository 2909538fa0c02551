// The vault's promises: content round-trips, a wrong key opens nothing and writes nothing,
// records cannot be swapped, forget leaves no bytes behind, passwd keeps data readable.
#include "app/vault.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hearth::app {
namespace {
namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/hearth-vault-test-XXXXXX";
    path = ::mkdtemp(tmpl);
    ::setenv("HEARTH_TEST_WEAK_KDF", "1", 1);  // fast Argon2id for tests only
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Both vault files as they are on disk now ("" for a missing WAL).
std::string disk_bytes(const std::string& dir) {
  return read_bytes(dir + "/vault.db") + read_bytes(dir + "/vault.db-wal");
}

std::unique_ptr<Vault> open_ok(const std::string& dir,
                               std::optional<std::string> pass = std::nullopt) {
  auto v = Vault::open(dir, pass);
  EXPECT_TRUE(v.has_value()) << v.error();
  return v ? std::move(*v) : nullptr;
}

// Runs SQL on the raw database, outside the vault.
void raw_sql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

std::string raw_blob(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(db_path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW)
    out.assign(static_cast<const char*>(sqlite3_column_blob(s, 0)),
               static_cast<size_t>(sqlite3_column_bytes(s, 0)));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

TEST(Vault, RoundTripAcrossReopen) {
  TempDir t;
  int64_t id = 0;
  {
    auto v = open_ok(t.path);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->key_holding(), KeyHolding::kKeyFile);
    auto c = v->create_conversation("sha256:ab", "Bonjour, ça va ?", "Be brief.");
    ASSERT_TRUE(c) << c.error();
    id = *c;
    ASSERT_TRUE(v->append_messages(id, {{"user", "Bonjour, ça va ?"}, {"assistant", "Oui."}}));
    ASSERT_TRUE(
        v->append_messages(id, {{"user", "second"}, {"assistant", std::string(100000, 'x')}}));
  }
  struct stat st {};
  ASSERT_EQ(::stat((t.path + "/vault.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto v = open_ok(t.path);
  ASSERT_TRUE(v);
  auto c = v->get(id);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->title, "Bonjour, ça va ?");
  EXPECT_EQ(c->system, "Be brief.");
  ASSERT_EQ(c->messages.size(), 4u);
  EXPECT_EQ(c->messages[1].role, "assistant");
  EXPECT_EQ(c->messages[1].text, "Oui.");
  EXPECT_EQ(c->messages[3].text, std::string(100000, 'x'));
  auto all = v->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].n_messages, 4);
  auto ic = v->integrity_check();
  ASSERT_TRUE(ic);
  EXPECT_EQ(*ic, "ok");
  // Content is never on disk in the clear.
  EXPECT_EQ(disk_bytes(t.path).find("Bonjour"), std::string::npos);
  EXPECT_EQ(disk_bytes(t.path).find("Be brief."), std::string::npos);
}

TEST(Vault, WrongPassphraseFailsAndWritesNothing) {
  TempDir t;
  {
    auto v = open_ok(t.path, "correct horse");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->key_holding(), KeyHolding::kPassphrase);
    auto c = v->create_conversation("m", "title", "");
    ASSERT_TRUE(c);
  }
  EXPECT_FALSE(fs::exists(t.path + "/vault.key"));
  const std::string before = disk_bytes(t.path) + read_bytes(t.path + "/audit.log");
  auto bad = Vault::open(t.path, std::string("wrong horse"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("wrong passphrase"), std::string::npos) << bad.error();
  auto none = Vault::open(t.path, std::nullopt);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().find("HEARTH_PASSPHRASE"), std::string::npos) << none.error();
  EXPECT_EQ(disk_bytes(t.path) + read_bytes(t.path + "/audit.log"), before);
  auto probe = Vault::probe(t.path);
  ASSERT_TRUE(probe);
  EXPECT_EQ(**probe, KeyHolding::kPassphrase);
  EXPECT_TRUE(open_ok(t.path, "correct horse"));
}

TEST(Vault, ReplacedKeyFileFails) {
  TempDir t;
  ASSERT_TRUE(open_ok(t.path));
  {
    std::ofstream f(t.path + "/vault.key", std::ios::binary | std::ios::trunc);
    f << std::string(32, 'k');
  }
  auto v = Vault::open(t.path, std::nullopt);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().find("does not open"), std::string::npos) << v.error();
  ::chmod((t.path + "/vault.key").c_str(), 0644);
  v = Vault::open(t.path, std::nullopt);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().find("readable by other users"), std::string::npos) << v.error();
}

TEST(Vault, SwappedCiphertextDoesNotDecrypt) {
  TempDir t;
  int64_t a = 0, b = 0;
  {
    auto v = open_ok(t.path);
    a = *v->create_conversation("m", "title A", "");
    b = *v->create_conversation("m", "title B", "");
    ASSERT_TRUE(v->append_messages(a, {{"user", "question A"}, {"assistant", "answer A"}}));
    ASSERT_TRUE(v->append_messages(b, {{"user", "question B"}, {"assistant", "answer B"}}));
  }
  const std::string db = t.path + "/vault.db";
  // Within a conversation: the user's message moved onto the assistant's row.
  raw_sql(db, "UPDATE messages SET body = (SELECT body FROM messages WHERE conv_id = " +
                  std::to_string(a) + " AND idx = 0) WHERE conv_id = " + std::to_string(a) +
                  " AND idx = 1");
  // Across conversations: B's title copied onto A... checked on B after copying A's title there.
  raw_sql(db, "UPDATE conversations SET title = (SELECT title FROM conversations WHERE id = " +
                  std::to_string(a) + ") WHERE id = " + std::to_string(b));
  auto v = open_ok(t.path);
  auto ca = v->get(a);
  ASSERT_FALSE(ca);
  EXPECT_NE(ca.error().find("does not decrypt"), std::string::npos) << ca.error();
  auto cb = v->get(b);
  ASSERT_FALSE(cb);
  EXPECT_NE(cb.error().find("does not decrypt"), std::string::npos) << cb.error();
  // A flipped bit anywhere in a record fails too.
  std::string body = raw_blob(
      db, "SELECT body FROM messages WHERE conv_id = " + std::to_string(b) + " AND idx = 1");
  ASSERT_FALSE(body.empty());
  v.reset();
  raw_sql(
      db, "UPDATE messages SET body = x'" + std::string() +
              [&] {
                body[body.size() / 2] ^= 1;
                std::string hex;
                for (unsigned char c : body) hex += fmt::format("{:02x}", c);
                return hex;
              }() +
              "' WHERE conv_id = " + std::to_string(b) + " AND idx = 1");
  raw_sql(db, "UPDATE conversations SET title = (SELECT title FROM conversations WHERE id = " +
                  std::to_string(a) + ") WHERE id = " + std::to_string(a));  // keep A's own title
  v = open_ok(t.path);
  EXPECT_FALSE(v->get(b));
}

TEST(Vault, ForgetLeavesNoPlaintextNorCiphertextInDbOrWal) {
  TempDir t;
  const std::string canary = "canary-7f3a9c-the-secret-the-user-wants-gone";
  auto v = open_ok(t.path);
  const int64_t keep = *v->create_conversation("m", "keep me", "");
  ASSERT_TRUE(v->append_messages(keep, {{"user", "unrelated"}, {"assistant", "fine"}}));
  const int64_t gone = *v->create_conversation("m", canary, canary);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(v->append_messages(gone, {{"user", canary}, {"assistant", canary + "!"}}));
  const std::string db = t.path + "/vault.db";
  std::vector<std::string> ciphertexts;
  for (int i = 0; i < 40; i += 7)
    ciphertexts.push_back(raw_blob(
        db, fmt::format("SELECT body FROM messages WHERE conv_id = {} AND idx = {}", gone, i)));
  ciphertexts.push_back(
      raw_blob(db, fmt::format("SELECT title FROM conversations WHERE id = {}", gone)));
  for (const auto& c : ciphertexts) {
    ASSERT_GT(c.size(), 40u);
    ASSERT_NE(disk_bytes(t.path).find(c.substr(24, 32)), std::string::npos)
        << "test setup: ciphertext on disk";
  }
  auto r = v->forget(gone);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->conversations, 1);
  EXPECT_EQ(r->messages, 40);
  EXPECT_TRUE(r->wal_cleared);
  auto check = [&](const char* when) {
    const std::string bytes = disk_bytes(t.path);
    EXPECT_EQ(bytes.find(canary), std::string::npos) << when;
    for (const auto& c : ciphertexts) {
      EXPECT_EQ(bytes.find(c.substr(0, 24)), std::string::npos) << when << ": a nonce survived";
      EXPECT_EQ(bytes.find(c.substr(24, 32)), std::string::npos) << when << ": ciphertext survived";
    }
  };
  check("vault open");
  EXPECT_FALSE(v->get(gone));
  auto k = v->get(keep);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->messages[1].text, "fine");
  v.reset();
  check("vault closed");
  v = open_ok(t.path);
  ASSERT_TRUE(v->forget_all());
  auto all = v->list();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
  EXPECT_FALSE(v->forget(keep));  // already gone: a clear error
}

TEST(Vault, PasswdRewrapsAndKeepsDataReadable) {
  TempDir t;
  int64_t id = 0;
  std::string first_wrap;
  {
    auto v = open_ok(t.path);
    id = *v->create_conversation("m", "hello", "");
    ASSERT_TRUE(v->append_messages(id, {{"user", "hello"}, {"assistant", "hi"}}));
    first_wrap = raw_blob(t.path + "/vault.db", "SELECT value FROM meta WHERE key = 'wrapped_key'");
    ASSERT_TRUE(v->change_key(std::string("s3cret")));
    EXPECT_EQ(v->key_holding(), KeyHolding::kPassphrase);
  }
  EXPECT_FALSE(fs::exists(t.path + "/vault.key"));
  EXPECT_FALSE(Vault::open(t.path, std::nullopt));
  EXPECT_EQ(disk_bytes(t.path).find(first_wrap), std::string::npos)
      << "the old wrap must not survive";
  {
    auto v = open_ok(t.path, "s3cret");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->get(id)->messages[1].text, "hi");
    ASSERT_TRUE(v->change_key(std::string("n3w")));
  }
  EXPECT_FALSE(Vault::open(t.path, std::string("s3cret")));
  {
    auto v = open_ok(t.path, "n3w");
    ASSERT_TRUE(v);
    ASSERT_TRUE(v->change_key(std::nullopt));  // back to a key file
  }
  auto v = open_ok(t.path);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->get(id)->messages[0].text, "hello");
  auto audit = v->verify_audit();
  ASSERT_TRUE(audit);
  EXPECT_TRUE(audit->ok) << audit->problem;
}

TEST(Vault, CreationKilledBeforeCommitIsRedone) {
  TempDir t;
  raw_sql(t.path + "/vault.db", "PRAGMA journal_mode=WAL;");  // what a kill mid-creation leaves
  {
    std::ofstream(t.path + "/audit.log") << "{\"seq\":1}\n";  // an older vault's log
  }
  auto v = open_ok(t.path);
  ASSERT_TRUE(v);
  auto c = v->create_conversation("m", "t", "");
  ASSERT_TRUE(c) << c.error();
  auto audit = v->verify_audit();
  ASSERT_TRUE(audit);
  EXPECT_TRUE(audit->ok) << audit->problem;
}

TEST(Vault, CorruptDatabaseIsAClearError) {
  TempDir t;
  {
    std::ofstream f(t.path + "/vault.db", std::ios::binary);
    f << std::string(4096, 'z');
  }
  auto v = Vault::open(t.path, std::nullopt);
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().find("vault.db"), std::string::npos) << v.error();
}

TEST(Vault, TurnRecorderStartsConversationsAndAppends) {
  TempDir t;
  auto v = open_ok(t.path);
  TurnRecorder rec(*v, "sha256:00");
  ASSERT_TRUE(rec.record("sys", "q1", "a1"));
  ASSERT_TRUE(rec.record("sys", "q2", "a2"));
  rec.new_conversation();
  ASSERT_TRUE(rec.record("", "q3", "a3"));
  auto all = v->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  auto first = v->get((*all)[1].id);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->system, "sys");
  ASSERT_EQ(first->messages.size(), 4u);
  EXPECT_EQ(first->messages[2].text, "q2");
  auto exported = v->export_json();
  ASSERT_TRUE(exported);
  EXPECT_NE(exported->find("hearth-history-export-v1"), std::string::npos);
  EXPECT_NE(exported->find("\"q3\""), std::string::npos);
}

}  // namespace
}  // namespace hearth::app
