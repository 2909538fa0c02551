#include "app/vault.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "app/crypto.h"
#include "platform/clock.h"
#include "platform/secure_file.h"

namespace hearth::app {
using nlohmann::json;

namespace {

constexpr const char* kDataKeyAd = "hearth-vault/v1/data-key";
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kTitleChars = 60;

std::string iso(int64_t t) { return platform::utc_text(t, "%Y-%m-%dT%H:%M:%SZ"); }

bool disk_full(sqlite3* db) {
  return sqlite3_errcode(db) == SQLITE_FULL || sqlite3_system_errno(db) == ENOSPC;
}

// SQLite's message, naming a full disk in words: SQLite reports a disk that fills while it
// grows its shared-memory file only as "disk I/O error".
std::string sqlite_error(sqlite3* db) {
  if (!disk_full(db)) return sqlite3_errmsg(db);
  return fmt::format("{}: the disk is full ({}); free some space and try again", sqlite3_errmsg(db),
                     std::strerror(ENOSPC));
}

// One prepared statement; finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return rc_ = sqlite3_step(s_); }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  std::string blob(int c) const {
    const void* p = sqlite3_column_blob(s_, c);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(s_, c)))
             : std::string();
  }
  std::string error() const { return sqlite_error(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

// At most kTitleChars bytes, cut at a UTF-8 character boundary.
std::string title_of(const std::string& text) {
  if (text.size() <= kTitleChars) return text;
  size_t n = kTitleChars;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80) --n;
  return text.substr(0, n);
}

std::string record_ad(const char* table, const char* field, int64_t conv, int64_t index,
                      const std::string& role) {
  return fmt::format("hearth-vault/v1/{}/{}/{}/{}/{}", table, field, conv, index, role);
}

Expected<std::string> wrap(const std::array<unsigned char, 32>& kek,
                           const std::array<unsigned char, 32>& data_key) {
  std::string out(kNonce + data_key.size() + kTag, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, kNonce);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(p + kNonce, &n, data_key.data(), data_key.size(),
                                             reinterpret_cast<const unsigned char*>(kDataKeyAd),
                                             std::strlen(kDataKeyAd), nullptr, p, kek.data());
  return out;
}

bool unwrap(const std::array<unsigned char, 32>& kek, const std::string& wrapped,
            std::array<unsigned char, 32>& data_key) {
  if (wrapped.size() != kNonce + data_key.size() + kTag) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(wrapped.data());
  unsigned long long n = 0;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(
             data_key.data(), &n, nullptr, p + kNonce, wrapped.size() - kNonce,
             reinterpret_cast<const unsigned char*>(kDataKeyAd), std::strlen(kDataKeyAd), p,
             kek.data()) == 0 &&
         n == data_key.size();
}

Status derive_kek(const std::string& passphrase, const std::string& salt, uint64_t ops,
                  uint64_t mem, std::array<unsigned char, 32>& kek) {
  if (salt.size() != crypto_pwhash_SALTBYTES)
    return make_error("vault: stored salt has the wrong size");
  if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_SENSITIVE * 4 ||
      mem < crypto_pwhash_MEMLIMIT_MIN || mem > (4ull << 30))
    return make_error(
        "vault: stored Argon2id limits (ops {}, mem {}) are out of range; the database is damaged",
        ops, mem);
  if (crypto_pwhash(kek.data(), kek.size(), passphrase.data(), passphrase.size(),
                    reinterpret_cast<const unsigned char*>(salt.data()), ops,
                    static_cast<size_t>(mem), crypto_pwhash_ALG_ARGON2ID13) != 0)
    return make_error("vault: Argon2id ran out of memory ({} MiB needed)", mem >> 20);
  return Status::ok();
}

// Limits for new passphrase wraps; the weak ones are for tests only (see vault.h).
std::pair<uint64_t, uint64_t> kdf_limits() {
  const char* weak = std::getenv("HEARTH_TEST_WEAK_KDF");
  if (weak && std::string(weak) == "1")
    return {crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};
  return {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

Status read_key_file(const std::string& path, std::array<unsigned char, 32>& kek) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return make_error("{}: cannot open the vault key file: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return make_error(
        "{}: the vault key file is readable by other users (mode {:o}); run `chmod 600 {}`", path,
        st.st_mode & 0777, path);
  }
  const ssize_t n = ::read(fd, kek.data(), kek.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(kek.size()))
    return make_error("{}: the vault key file is damaged (wrong size)", path);
  return Status::ok();
}

struct Wrapped {
  std::string kdf, salt, wrapped;
  uint64_t ops = 0, mem = 0;
};

// A new wrap of data_key: under a passphrase (fresh salt) or a fresh key file written atomically.
Expected<Wrapped> make_wrap(const std::string& dir, const std::optional<std::string>& passphrase,
                            const std::array<unsigned char, 32>& data_key) {
  Wrapped w;
  std::array<unsigned char, 32> kek{};
  if (passphrase && !passphrase->empty()) {
    w.kdf = "argon2id";
    w.salt.resize(crypto_pwhash_SALTBYTES);
    randombytes_buf(w.salt.data(), w.salt.size());
    std::tie(w.ops, w.mem) = kdf_limits();
    if (Status s = derive_kek(*passphrase, w.salt, w.ops, w.mem, kek); !s) return Error{s.error()};
  } else {
    w.kdf = "keyfile";
    randombytes_buf(kek.data(), kek.size());
    const std::string path = dir + "/vault.key.new";
    if (Status s = platform::write_file_atomic(
            path, std::string_view(reinterpret_cast<char*>(kek.data()), kek.size()), 0600);
        !s)
      return Error{s.error()};
  }
  auto wrapped = wrap(kek, data_key);
  sodium_memzero(kek.data(), kek.size());
  if (!wrapped) return Error{wrapped.error()};
  w.wrapped = *wrapped;
  return w;
}

}  // namespace

Vault::~Vault() {
  if (db_) sqlite3_close_v2(db_);
  sodium_memzero(content_key_.data(), content_key_.size());
  sodium_memzero(data_key_.data(), data_key_.size());
}

Status Vault::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);  // the same text as sqlite3_errmsg, which sqlite_error extends
    const std::string msg = sqlite_error(db_);
    return make_error("{}: {} (in: {:.40})", db_path(), msg, sql);
  }
  return Status::ok();
}

Status Vault::set_meta(const std::string& key, const std::string& value) {
  Stmt s(db_,
         "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = "
         "excluded.value");
  if (!s.ok() || s.bind_text(1, key).bind(2, value).step() != SQLITE_DONE)
    return make_error("{}: cannot write meta '{}': {}", db_path(), key, s.error());
  return Status::ok();
}

Expected<std::optional<std::string>> Vault::get_meta(const std::string& key) {
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?1");
  if (!s.ok()) return make_error("{}: not a Hearth vault, or damaged: {}", db_path(), s.error());
  s.bind_text(1, key);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<std::string>(s.blob(0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return make_error("{}: cannot read meta '{}': {}", db_path(), key, s.error());
}

Expected<std::optional<KeyHolding>> Vault::probe(const std::string& dir) {
  const std::string path = dir + "/vault.db";
  if (::access(path.c_str(), F_OK) != 0) return std::optional<KeyHolding>();
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return make_error("{}: cannot open the vault", path);
  }
  std::optional<KeyHolding> out;
  std::string full;  // a vault that cannot be read for want of space is not "no vault"
  {
    Stmt s(db, "SELECT value FROM meta WHERE key = 'kdf'");
    if (s.ok() && s.step() == SQLITE_ROW)
      out = s.blob(0) == "argon2id" ? KeyHolding::kPassphrase : KeyHolding::kKeyFile;
    else if (disk_full(db))
      full = s.error();
  }
  sqlite3_close(db);
  if (!full.empty()) return make_error("{}: cannot open the vault: {}", path, full);
  return out;
}

Expected<VaultInfo> Vault::inspect(const std::string& dir) {
  VaultInfo info;
  info.key_file = dir + "/vault.key";
  struct stat st {};
  if (::lstat(info.key_file.c_str(), &st) == 0) {
    info.key_file_exists = true;
    info.key_file_mode = st.st_mode & 0777;
  }
  const std::string path = dir + "/vault.db";
  if (::access(path.c_str(), F_OK) != 0) return info;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return make_error("{}: cannot open the vault", path);
  }
  info.exists = true;
  auto meta = [&](const char* key) {
    Stmt s(db, "SELECT value FROM meta WHERE key = ?1");
    s.bind_text(1, key);
    return s.ok() && s.step() == SQLITE_ROW ? s.blob(0) : std::string();
  };
  info.holding = meta("kdf") == "argon2id" ? KeyHolding::kPassphrase : KeyHolding::kKeyFile;
  info.opslimit = std::strtoull(meta("opslimit").c_str(), nullptr, 10);
  info.memlimit = std::strtoull(meta("memlimit").c_str(), nullptr, 10);
  {
    Stmt s(db, "SELECT (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM messages)");
    if (s.ok() && s.step() == SQLITE_ROW) info.conversations = s.i64(0), info.messages = s.i64(1);
  }
  sqlite3_close(db);
  return info;
}

Expected<std::unique_ptr<Vault>> Vault::open(const std::string& dir,
                                             const std::optional<std::string>& passphrase) {
  if (Status s = crypto_init(); !s) return Error{s.error()};
  if (Status s = platform::make_private_dir(dir); !s) return Error{s.error()};
  std::unique_ptr<Vault> v(new Vault());
  v->dir_ = dir;
  const bool existed = ::access(v->db_path().c_str(), F_OK) == 0;
  if (sqlite3_open_v2(v->db_path().c_str(), &v->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return make_error("{}: cannot open the vault: {}", v->db_path(),
                      v->db_ ? sqlite3_errmsg(v->db_) : "out of memory");
  sqlite3_busy_timeout(v->db_, 5000);
  if (existed) ::chmod(v->db_path().c_str(), 0600);
  if (Status s =
          v->exec("PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
      !s)
    return Error{s.error()};

  // A file with an empty schema is a vault whose creation was killed before it committed.
  bool initialized = false;
  if (existed) {
    Stmt s(v->db_, "SELECT COUNT(*) FROM sqlite_master");
    if (!s.ok() || s.step() != SQLITE_ROW)
      return make_error(
          "{}: {}: {}", v->db_path(),
          disk_full(v->db_) ? "cannot open the vault" : "not a Hearth vault, or damaged",
          s.error());
    initialized = s.i64(0) > 0;
  }
  auto kdf = initialized ? v->get_meta("kdf")
                         : Expected<std::optional<std::string>>(std::optional<std::string>());
  if (!kdf) return Error{kdf.error()};
  if (!*kdf) {  // a new vault (or one whose creation never committed)
    if (Status s =
            v->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                    "BEGIN IMMEDIATE;"
                    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS conversations(id INTEGER PRIMARY KEY "
                    "AUTOINCREMENT, created INTEGER NOT NULL,"
                    " updated INTEGER NOT NULL, model TEXT NOT NULL, title BLOB NOT NULL, system "
                    "BLOB NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS messages(conv_id INTEGER NOT NULL REFERENCES "
                    "conversations(id) ON DELETE CASCADE,"
                    " idx INTEGER NOT NULL, role TEXT NOT NULL, created INTEGER NOT NULL, body "
                    "BLOB NOT NULL,"
                    " PRIMARY KEY(conv_id, idx));");
        !s)
      return Error{s.error()};
    randombytes_buf(v->data_key_.data(), v->data_key_.size());
    auto w = make_wrap(dir, passphrase, v->data_key_);
    if (!w) {
      (void)v->exec("ROLLBACK;");
      return Error{w.error()};
    }
    Status s = v->set_meta("version", "1");
    if (s) s = v->set_meta("kdf", w->kdf);
    if (s) s = v->set_meta("wrapped_key", w->wrapped);
    if (s && w->kdf == "argon2id") s = v->set_meta("salt", w->salt);
    if (s && w->kdf == "argon2id") s = v->set_meta("opslimit", std::to_string(w->ops));
    if (s && w->kdf == "argon2id") s = v->set_meta("memlimit", std::to_string(w->mem));
    if (s && w->kdf == "keyfile" &&
        ::rename((dir + "/vault.key.new").c_str(), (dir + "/vault.key").c_str()) != 0)
      s = make_error("{}/vault.key: cannot write: {}", dir, std::strerror(errno));
    if (s) s = v->exec("COMMIT;");
    if (!s) {
      (void)v->exec("ROLLBACK;");
      return Error{s.error()};
    }
    v->holding_ = w->kdf == "argon2id" ? KeyHolding::kPassphrase : KeyHolding::kKeyFile;
  } else {
    auto wrapped = v->get_meta("wrapped_key");
    if (!wrapped) return Error{wrapped.error()};
    if (!*wrapped)
      return make_error("{}: the vault has no wrapped key; it is damaged", v->db_path());
    std::array<unsigned char, 32> kek{};
    if (**kdf == "argon2id") {
      v->holding_ = KeyHolding::kPassphrase;
      if (!passphrase || passphrase->empty())
        return make_error(
            "the vault {} is locked with a passphrase: set HEARTH_PASSPHRASE or run in a terminal "
            "to be "
            "asked for it (or use --no-history)",
            v->db_path());
      auto salt = v->get_meta("salt");
      auto ops = v->get_meta("opslimit");
      auto mem = v->get_meta("memlimit");
      if (!salt || !ops || !mem || !*salt || !*ops || !*mem)
        return make_error("{}: the vault's key parameters are missing; it is damaged",
                          v->db_path());
      if (Status s = derive_kek(*passphrase, **salt, std::strtoull((*ops)->c_str(), nullptr, 10),
                                std::strtoull((*mem)->c_str(), nullptr, 10), kek);
          !s)
        return Error{s.error()};
    } else if (**kdf == "keyfile") {
      v->holding_ = KeyHolding::kKeyFile;
      if (Status s = read_key_file(dir + "/vault.key", kek); !s) return Error{s.error()};
    } else {
      return make_error("{}: unknown key scheme '{}'", v->db_path(), **kdf);
    }
    const bool ok = unwrap(kek, **wrapped, v->data_key_);
    sodium_memzero(kek.data(), kek.size());
    if (!ok)
      return Error{v->holding_ == KeyHolding::kPassphrase
                       ? std::string("wrong passphrase for the vault ") + v->db_path() +
                             " (nothing was changed)"
                       : "the vault key file " + dir + "/vault.key does not open " + v->db_path() +
                             " (was it replaced?); nothing was changed"};
    if (Status s = v->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"); !s)
      return Error{s.error()};
  }
  crypto_kdf_derive_from_key(v->content_key_.data(), v->content_key_.size(), 1, "hvault01",
                             v->data_key_.data());
  AuditLog::Key ak{};
  crypto_kdf_derive_from_key(ak.data(), ak.size(), 2, "haudit01", v->data_key_.data());
  v->audit_ = std::make_unique<AuditLog>(dir + "/audit.log", ak);
  sodium_memzero(ak.data(), ak.size());
  if (!initialized) {
    // An audit log left from an earlier vault is under another key: keep it aside, start anew.
    const std::string log = dir + "/audit.log";
    if (::access(log.c_str(), F_OK) == 0)
      ::rename(log.c_str(), (log + ".before-" + std::to_string(platform::unix_seconds())).c_str());
    if (Status s =
            v->audit("vault_created",
                     {{"key", v->holding_ == KeyHolding::kPassphrase ? "passphrase" : "keyfile"}});
        !s)
      return Error{s.error()};
  }
  return v;
}

Expected<std::string> Vault::seal(const std::string& text, const std::string& ad) const {
  std::string out(kNonce + text.size() + kTag, '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(p, kNonce);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      p + kNonce, &n, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
      reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr, p,
      content_key_.data());
  return out;
}

Expected<std::string> Vault::unseal(const std::string& blob, const std::string& ad) const {
  if (blob.size() < kNonce + kTag) return make_error("{}: record {} is truncated", db_path(), ad);
  std::string out(blob.size() - kNonce - kTag, '\0');
  const auto* p = reinterpret_cast<const unsigned char*>(blob.data());
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(out.data()), &n,
                                                 nullptr, p + kNonce, blob.size() - kNonce,
                                                 reinterpret_cast<const unsigned char*>(ad.data()),
                                                 ad.size(), p, content_key_.data()) != 0)
    return make_error("{}: record {} does not decrypt (altered, or moved from another record)",
                      db_path(), ad);
  out.resize(n);
  return out;
}

Status Vault::audit(const std::string& event, const json& details) {
  auto anchor = audit_->append(event, details);
  if (!anchor) return Status(Error{anchor.error()});
  return set_meta("audit_head", fmt::format("{}:{}", anchor->seq, anchor->hash));
}

Expected<AuditVerifyResult> Vault::verify_audit() {
  auto head = get_meta("audit_head");
  if (!head) return Error{head.error()};
  std::optional<AuditAnchor> anchor;
  if (*head) {
    const size_t colon = (*head)->find(':');
    if (colon == std::string::npos) return make_error("{}: damaged audit anchor", db_path());
    anchor = AuditAnchor{std::strtoll((*head)->c_str(), nullptr, 10), (*head)->substr(colon + 1)};
  }
  return audit_->verify(anchor);
}

Expected<std::string> Vault::integrity_check() {
  Stmt s(db_, "PRAGMA integrity_check");
  std::string out;
  while (s.step() == SQLITE_ROW) out += (out.empty() ? "" : "; ") + s.blob(0);
  if (out.empty()) return make_error("{}: integrity_check failed: {}", db_path(), s.error());
  return out;
}

Expected<int64_t> Vault::create_conversation(const std::string& model, const std::string& title,
                                             const std::string& system) {
  if (Status s = exec("BEGIN IMMEDIATE;"); !s) return Error{s.error()};
  const int64_t now = platform::unix_seconds();
  int64_t id = 0;
  {
    // The id must be known before sealing (it is in the associated data): insert, then seal.
    Stmt ins(db_,
             "INSERT INTO conversations(created, updated, model, title, system) VALUES(?1, ?1, ?2, "
             "x'', x'')");
    if (!ins.ok() || ins.bind(1, now).bind_text(2, model).step() != SQLITE_DONE) {
      (void)exec("ROLLBACK;");
      return make_error("{}: cannot store a conversation: {}", db_path(), ins.error());
    }
    id = sqlite3_last_insert_rowid(db_);
  }
  auto t = seal(title_of(title), record_ad("conversations", "title", id, 0, ""));
  auto sy = seal(system, record_ad("conversations", "system", id, 0, ""));
  Stmt up(db_, "UPDATE conversations SET title = ?1, system = ?2 WHERE id = ?3");
  if (!up.ok() || up.bind(1, *t).bind(2, *sy).bind(3, id).step() != SQLITE_DONE) {
    (void)exec("ROLLBACK;");
    return make_error("{}: cannot store a conversation: {}", db_path(), up.error());
  }
  if (Status s = exec("COMMIT;"); !s) return Error{s.error()};
  return id;
}

Status Vault::append_messages(int64_t id,
                              const std::vector<std::pair<std::string, std::string>>& messages) {
  if (Status s = exec("BEGIN IMMEDIATE;"); !s) return s;
  auto rollback = [&](std::string msg) {
    (void)exec("ROLLBACK;");
    return Status(Error{std::move(msg)});
  };
  int64_t next = 0;
  {
    Stmt q(db_,
           "SELECT COALESCE(MAX(idx) + 1, 0), (SELECT COUNT(*) FROM conversations WHERE id = ?1) "
           "FROM messages "
           "WHERE conv_id = ?1");
    if (!q.ok() || q.bind(1, id).step() != SQLITE_ROW)
      return rollback(fmt::format("{}: {}", db_path(), q.error()));
    if (q.i64(1) == 0) return rollback(fmt::format("no conversation {} in the vault", id));
    next = q.i64(0);
  }
  const int64_t now = platform::unix_seconds();
  for (const auto& [role, text] : messages) {
    auto body = seal(text, record_ad("messages", "body", id, next, role));
    Stmt ins(db_,
             "INSERT INTO messages(conv_id, idx, role, created, body) VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!ins.ok() ||
        ins.bind(1, id).bind(2, next).bind_text(3, role).bind(4, now).bind(5, *body).step() !=
            SQLITE_DONE)
      return rollback(fmt::format("{}: cannot store a message: {}", db_path(), ins.error()));
    ++next;
  }
  Stmt up(db_, "UPDATE conversations SET updated = ?1 WHERE id = ?2");
  if (!up.ok() || up.bind(1, now).bind(2, id).step() != SQLITE_DONE)
    return rollback(fmt::format("{}: {}", db_path(), up.error()));
  // A COMMIT that fails (disk full) may leave the transaction open: end it, or the next turn
  // could not begin one.
  if (Status s = exec("COMMIT;"); !s) return rollback(s.error());
  return Status::ok();
}

Expected<std::vector<Conversation>> Vault::list() {
  std::vector<Conversation> out;
  Stmt s(db_,
         "SELECT id, created, updated, model, title, (SELECT COUNT(*) FROM messages m WHERE "
         "m.conv_id = c.id) "
         "FROM conversations c ORDER BY updated DESC, id DESC");
  if (!s.ok()) return make_error("{}: {}", db_path(), s.error());
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    Conversation c;
    c.id = s.i64(0);
    c.created = s.i64(1);
    c.updated = s.i64(2);
    c.model = s.blob(3);
    auto title = unseal(s.blob(4), record_ad("conversations", "title", c.id, 0, ""));
    if (!title) return Error{title.error()};
    c.title = std::move(*title);
    c.n_messages = s.i64(5);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) return make_error("{}: {}", db_path(), s.error());
  return out;
}

Expected<Conversation> Vault::get(int64_t id) {
  Conversation c;
  {
    Stmt s(db_, "SELECT created, updated, model, title, system FROM conversations WHERE id = ?1");
    if (!s.ok()) return make_error("{}: {}", db_path(), s.error());
    if (s.bind(1, id).step() != SQLITE_ROW)
      return make_error("no conversation {} in the vault", id);
    c.id = id;
    c.created = s.i64(0);
    c.updated = s.i64(1);
    c.model = s.blob(2);
    auto title = unseal(s.blob(3), record_ad("conversations", "title", id, 0, ""));
    auto system = unseal(s.blob(4), record_ad("conversations", "system", id, 0, ""));
    if (!title) return Error{title.error()};
    if (!system) return Error{system.error()};
    c.title = std::move(*title);
    c.system = std::move(*system);
  }
  Stmt s(db_, "SELECT idx, role, created, body FROM messages WHERE conv_id = ?1 ORDER BY idx");
  if (!s.ok()) return make_error("{}: {}", db_path(), s.error());
  s.bind(1, id);
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    StoredMessage m;
    m.index = s.i64(0);
    m.role = s.blob(1);
    m.created = s.i64(2);
    auto text = unseal(s.blob(3), record_ad("messages", "body", id, m.index, m.role));
    if (!text) return Error{text.error()};
    m.text = std::move(*text);
    c.messages.push_back(std::move(m));
  }
  if (rc != SQLITE_DONE) return make_error("{}: {}", db_path(), s.error());
  c.n_messages = static_cast<int64_t>(c.messages.size());
  return c;
}

Expected<std::string> Vault::export_json() {
  auto all = list();
  if (!all) return Error{all.error()};
  json convs = json::array();
  for (auto it = all->rbegin(); it != all->rend(); ++it) {  // oldest first
    auto c = get(it->id);
    if (!c) return Error{c.error()};
    json msgs = json::array();
    for (const auto& m : c->messages)
      msgs.push_back(
          {{"index", m.index}, {"role", m.role}, {"created", iso(m.created)}, {"text", m.text}});
    convs.push_back({{"id", c->id},
                     {"created", iso(c->created)},
                     {"updated", iso(c->updated)},
                     {"model", c->model},
                     {"title", c->title},
                     {"system", c->system},
                     {"messages", msgs}});
  }
  const json doc{{"format", "hearth-history-export-v1"},
                 {"exported_at", iso(platform::unix_seconds())},
                 {"conversations", convs}};
  if (Status s = audit("history_exported", {{"conversations", convs.size()}}); !s)
    return Error{s.error()};
  return doc.dump(2) + "\n";
}

Expected<ForgetReport> Vault::erase_where(const char* conv_sql, const char* msg_sql,
                                          std::optional<int64_t> id) {
  ForgetReport r;
  if (Status s = exec("BEGIN IMMEDIATE;"); !s) return Error{s.error()};
  {
    Stmt m(db_, msg_sql);
    if (id) m.bind(1, *id);
    if (!m.ok() || m.step() != SQLITE_DONE) {
      (void)exec("ROLLBACK;");
      return make_error("{}: {}", db_path(), m.error());
    }
    r.messages = sqlite3_changes(db_);
    Stmt c(db_, conv_sql);
    if (id) c.bind(1, *id);
    if (!c.ok() || c.step() != SQLITE_DONE) {
      (void)exec("ROLLBACK;");
      return make_error("{}: {}", db_path(), c.error());
    }
    r.conversations = sqlite3_changes(db_);
  }
  if (Status s = exec("COMMIT;"); !s) return Error{s.error()};
  if (id && r.conversations == 0) return make_error("no conversation {} in the vault", *id);
  // secure_delete zeroed the freed cells; now move the zeroed pages into vault.db, drop the
  // WAL (which still holds older frames with the ciphertext), and rebuild the file.
  auto checkpoint = [&]() -> Expected<bool> {
    Stmt cp(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
    if (!cp.ok() || cp.step() != SQLITE_ROW)
      return make_error("{}: checkpoint failed: {}", db_path(), cp.error());
    return cp.i64(0) == 0;  // busy = 0: completed
  };
  auto done = checkpoint();
  if (!done) return Error{done.error()};
  if (Status s = exec("VACUUM;"); !s) return Error{s.error()};
  auto done2 = checkpoint();
  if (!done2) return Error{done2.error()};
  r.wal_cleared = *done && *done2;
  json details{{"conversations", r.conversations}, {"messages", r.messages}};
  if (id) details["id"] = *id;
  if (Status s = audit(id ? "conversation_forgotten" : "history_forgotten", details); !s)
    return Error{s.error()};
  (void)checkpoint();  // the audit anchor update
  return r;
}

Expected<ForgetReport> Vault::forget(int64_t id) {
  return erase_where("DELETE FROM conversations WHERE id = ?1",
                     "DELETE FROM messages WHERE conv_id = ?1", id);
}

Expected<ForgetReport> Vault::forget_all() {
  return erase_where("DELETE FROM conversations", "DELETE FROM messages", std::nullopt);
}

Status Vault::change_key(const std::optional<std::string>& new_passphrase) {
  auto w = make_wrap(dir_, new_passphrase, data_key_);
  if (!w) return Status(Error{w.error()});
  if (Status s = exec("BEGIN IMMEDIATE;"); !s) return s;
  Status s = set_meta("kdf", w->kdf);
  if (s) s = set_meta("wrapped_key", w->wrapped);
  if (s && w->kdf == "argon2id") s = set_meta("salt", w->salt);
  if (s && w->kdf == "argon2id") s = set_meta("opslimit", std::to_string(w->ops));
  if (s && w->kdf == "argon2id") s = set_meta("memlimit", std::to_string(w->mem));
  if (s && w->kdf == "keyfile") {
    // The new key file takes its place only together with the commit below.
    if (::rename((dir_ + "/vault.key.new").c_str(), (dir_ + "/vault.key").c_str()) != 0)
      s = make_error("{}/vault.key: cannot write: {}", dir_, std::strerror(errno));
  }
  if (s) s = exec("COMMIT;");
  if (!s) {
    (void)exec("ROLLBACK;");
    ::unlink((dir_ + "/vault.key.new").c_str());
    return s;
  }
  holding_ = w->kdf == "argon2id" ? KeyHolding::kPassphrase : KeyHolding::kKeyFile;
  if (holding_ == KeyHolding::kPassphrase) ::unlink((dir_ + "/vault.key").c_str());
  // Old wraps must not survive in the WAL or free pages.
  if (Status c = exec("PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);");
      !c)
    return c;
  return audit("key_changed",
               {{"key", holding_ == KeyHolding::kPassphrase ? "passphrase" : "keyfile"}});
}

Status TurnRecorder::record(const std::string& system, const std::string& user,
                            const std::string& assistant) {
  if (id_ == 0) {
    auto id = vault_.create_conversation(model_, user, system);
    if (!id) return Status(Error{id.error()});
    id_ = *id;
    if (Status s = vault_.audit("conversation_stored", {{"id", id_}, {"model", model_}}); !s)
      return s;
  }
  return vault_.append_messages(id_, {{"user", user}, {"assistant", assistant}});
}

}  // namespace hearth::app
