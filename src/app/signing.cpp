#include "app/signing.h"

#include <sodium.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/crypto.h"
#include "platform/clock.h"
#include "platform/secure_file.h"

namespace hearth::app {
namespace {
using nlohmann::json;

constexpr std::string_view kKeyPrefix = "ed25519:";
constexpr std::string_view kSecretPrefix = "ed25519-secret:";
constexpr const char *kDomain = "hearth-model-signature-v1";
constexpr size_t kMaxLabel = 64;

std::string trusted_path(const std::string &data_dir) {
  return data_dir + "/trusted_keys.json";
}

bool file_exists(const std::string &path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// The file's JSON object when it exists, an empty object when it does not.
Expected<json> read_json(const std::string &path, const char *format) {
  if (!file_exists(path))
    return json::object();
  auto text = platform::read_file(path, 4 << 20);
  if (!text)
    return Error{text.error()};
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("format") ||
      j["format"] != format)
    return make_error("{}: not a {} file; move it away to start afresh", path,
                      format);
  return j;
}

Status check_label(const std::string &name) {
  if (name.size() > kMaxLabel)
    return make_error("the label is {} characters; at most {}", name.size(),
                      kMaxLabel);
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return make_error("the label may not contain control characters");
  return Status::ok();
}

struct SignatureEntry {
  int version = 0;
  std::string sha256;
  PublicKey key{};
  std::string signature; // crypto_sign_BYTES raw bytes
};

Expected<std::vector<SignatureEntry>> read_signatures(const std::string &path) {
  auto j = read_json(path, "hearth-model-signatures-v1");
  if (!j)
    return Error{j.error()};
  std::vector<SignatureEntry> out;
  if (!j->contains("signatures"))
    return out;
  try {
    for (const auto &e : j->at("signatures")) {
      SignatureEntry s;
      s.version = e.at("version").get<int>();
      s.sha256 = e.at("sha256").get<std::string>();
      auto key = parse_public_key(e.at("key").get<std::string>());
      if (!key)
        return make_error("{}: {}", path, key.error());
      s.key = *key;
      auto sig = from_hex(e.at("signature").get<std::string>());
      if (!sig || sig->size() != crypto_sign_BYTES)
        return make_error("{}: a signature is not {} hex digits", path,
                          2 * crypto_sign_BYTES);
      s.signature = std::move(*sig);
      out.push_back(std::move(s));
    }
  } catch (const json::exception &e) {
    return make_error("{}: malformed signature file: {}", path, e.what());
  }
  return out;
}

Status write_signatures(const std::string &path,
                        const std::vector<SignatureEntry> &all) {
  json list = json::array();
  for (const auto &s : all)
    list.push_back({{"version", s.version},
                    {"sha256", s.sha256},
                    {"key", format_public_key(s.key)},
                    {"signature", to_hex(s.signature)}});
  const json j{{"format", "hearth-model-signatures-v1"}, {"signatures", list}};
  return platform::write_file_atomic(path, j.dump(2) + "\n", 0600);
}

Status write_trusted(const std::string &data_dir,
                     const std::vector<TrustedKey> &keys) {
  json list = json::array();
  for (const auto &k : keys)
    list.push_back({{"key", format_public_key(k.key)},
                    {"name", k.name},
                    {"added_at", k.added_at}});
  const json j{{"format", "hearth-trusted-keys-v1"}, {"keys", list}};
  if (Status s = platform::make_private_dir(data_dir); !s)
    return s;
  return platform::write_file_atomic(trusted_path(data_dir), j.dump(2) + "\n",
                                     0600);
}

// The stored secret key (crypto_sign_SECRETKEYBYTES bytes).
Expected<std::string> read_secret_key(const std::string &data_dir) {
  const std::string path = signing_key_path(data_dir);
  if (!file_exists(path))
    return make_error(
        "there is no signing key ({}); make one with `hearth keygen`", path);
  auto text = platform::read_file(path, 4096);
  if (!text)
    return Error{text.error()};
  std::string_view t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r'))
    t.remove_suffix(1);
  if (t.substr(0, kSecretPrefix.size()) != kSecretPrefix)
    return make_error("{}: not a Hearth signing key", path);
  auto sk = from_hex(t.substr(kSecretPrefix.size()));
  if (!sk || sk->size() != crypto_sign_SECRETKEYBYTES)
    return make_error("{}: the key is not {} hex digits", path,
                      2 * crypto_sign_SECRETKEYBYTES);
  return sk;
}

} // namespace

std::string format_public_key(const PublicKey &key) {
  return std::string(kKeyPrefix) + to_hex(key.data(), key.size());
}

Expected<PublicKey> parse_public_key(std::string_view text) {
  const std::string shown(text.substr(0, 80));
  if (text.substr(0, kKeyPrefix.size()) != kKeyPrefix)
    return make_error(
        "'{}' is not a public key: expected 'ed25519:' and 64 hex digits",
        shown);
  auto raw = from_hex(text.substr(kKeyPrefix.size()));
  if (!raw || raw->size() != PublicKey{}.size())
    return make_error(
        "'{}' is not a public key: expected 'ed25519:' and 64 hex digits",
        shown);
  PublicKey k;
  std::copy(raw->begin(), raw->end(), k.begin());
  return k;
}

std::string signing_message(const std::string &name, const ModelVersion &v) {
  return fmt::format("{}\nname={}\nversion={}\nsha256={}\nsize={}\n", kDomain,
                     name, v.version, v.sha256, v.size);
}

std::string signing_key_path(const std::string &data_dir) {
  return data_dir + "/signing.key";
}

Expected<PublicKey> generate_signing_key(const std::string &data_dir,
                                         bool force) {
  if (Status s = crypto_init(); !s)
    return Error{s.error()};
  const std::string path = signing_key_path(data_dir);
  if (!force && file_exists(path))
    return make_error("{} already exists; `hearth keygen --force` replaces it "
                      "(signatures made with the old key "
                      "stay valid only where that key is trusted)",
                      path);
  PublicKey pk;
  std::string sk(crypto_sign_SECRETKEYBYTES, '\0');
  crypto_sign_keypair(pk.data(), reinterpret_cast<unsigned char *>(sk.data()));
  std::string text = std::string(kSecretPrefix) + to_hex(sk) + "\n";
  sodium_memzero(sk.data(), sk.size());
  Status s = platform::make_private_dir(data_dir);
  if (s)
    s = platform::write_file_atomic(path, text, 0600);
  sodium_memzero(text.data(), text.size());
  if (!s)
    return Error{s.error()};
  return pk;
}

Expected<PublicKey> signing_public_key(const std::string &data_dir) {
  auto sk = read_secret_key(data_dir);
  if (!sk)
    return Error{sk.error()};
  PublicKey pk;
  crypto_sign_ed25519_sk_to_pk(
      pk.data(), reinterpret_cast<const unsigned char *>(sk->data()));
  sodium_memzero(sk->data(), sk->size());
  return pk;
}

Expected<std::vector<TrustedKey>>
load_trusted_keys(const std::string &data_dir) {
  const std::string path = trusted_path(data_dir);
  auto j = read_json(path, "hearth-trusted-keys-v1");
  if (!j)
    return Error{j.error()};
  std::vector<TrustedKey> out;
  if (!j->contains("keys"))
    return out;
  try {
    for (const auto &e : j->at("keys")) {
      TrustedKey k;
      auto key = parse_public_key(e.at("key").get<std::string>());
      if (!key)
        return make_error("{}: {}", path, key.error());
      k.key = *key;
      k.name = e.at("name").get<std::string>();
      k.added_at = e.at("added_at").get<int64_t>();
      out.push_back(std::move(k));
    }
  } catch (const json::exception &e) {
    return make_error("{}: malformed trusted key list: {}", path, e.what());
  }
  return out;
}

Status trust_key(const std::string &data_dir, const PublicKey &key,
                 const std::string &name) {
  if (Status s = check_label(name); !s)
    return s;
  auto keys = load_trusted_keys(data_dir);
  if (!keys)
    return Error{keys.error()};
  auto it = std::find_if(keys->begin(), keys->end(),
                         [&](const auto &k) { return k.key == key; });
  if (it != keys->end()) {
    it->name = name;
  } else {
    keys->push_back({key, name, platform::unix_seconds()});
  }
  return write_trusted(data_dir, *keys);
}

Expected<TrustedKey> untrust_key(const std::string &data_dir,
                                 const std::string &key_or_name) {
  auto keys = load_trusted_keys(data_dir);
  if (!keys)
    return Error{keys.error()};
  auto parsed = parse_public_key(key_or_name);
  auto it = std::find_if(keys->begin(), keys->end(), [&](const auto &k) {
    return parsed ? k.key == *parsed
                  : (!k.name.empty() && k.name == key_or_name);
  });
  if (it == keys->end())
    return make_error(
        "'{}' is not a trusted key or label; `hearth trust list` shows them",
        key_or_name.substr(0, 80));
  TrustedKey removed = *it;
  keys->erase(it);
  if (Status s = write_trusted(data_dir, *keys); !s)
    return Error{s.error()};
  return removed;
}

Expected<PublicKey> sign_model(ModelStore &store, const std::string &name) {
  if (Status s = crypto_init(); !s)
    return Error{s.error()};
  auto m = store.get(name);
  if (!m)
    return Error{m.error()};
  const ModelVersion &v = m->current();
  if (v.changed)
    return make_error("model '{}' no longer matches its recorded sha256; it "
                      "cannot be signed (`hearth verify "
                      "{}`)",
                      name, name);
  auto sk = read_secret_key(store.root());
  if (!sk)
    return Error{sk.error()};
  const std::string msg = signing_message(name, v);
  SignatureEntry e;
  e.version = v.version;
  e.sha256 = v.sha256;
  e.signature.assign(crypto_sign_BYTES, '\0');
  const auto *skp = reinterpret_cast<const unsigned char *>(sk->data());
  crypto_sign_detached(
      reinterpret_cast<unsigned char *>(e.signature.data()), nullptr,
      reinterpret_cast<const unsigned char *>(msg.data()), msg.size(), skp);
  crypto_sign_ed25519_sk_to_pk(e.key.data(), skp);
  sodium_memzero(sk->data(), sk->size());

  const std::string path = store.signature_path(name);
  auto all = read_signatures(path);
  if (!all)
    return Error{all.error()};
  std::erase_if(*all, [&](const SignatureEntry &s) {
    return s.key == e.key && s.version == e.version;
  });
  all->push_back(e);
  if (Status s = write_signatures(path, *all); !s)
    return Error{s.error()};
  return e.key;
}

Expected<SignatureCheck>
check_signature(const ModelStore &store, const ModelManifest &m,
                const std::vector<TrustedKey> &trusted) {
  if (Status s = crypto_init(); !s)
    return Error{s.error()};
  const std::string path = store.signature_path(m.name);
  SignatureCheck out;
  auto all = read_signatures(path);
  if (!all) {
    out.state = SignatureState::kInvalid;
    out.detail = all.error();
    return out;
  }
  const ModelVersion &v = m.current();
  const std::string msg = signing_message(m.name, v);
  for (const auto &s : *all) {
    // Entries for other versions (kept for rollback) or for bytes since
    // replaced do not apply.
    if (s.version != v.version || s.sha256 != v.sha256)
      continue;
    const bool good =
        crypto_sign_verify_detached(
            reinterpret_cast<const unsigned char *>(s.signature.data()),
            reinterpret_cast<const unsigned char *>(msg.data()), msg.size(),
            s.key.data()) == 0;
    if (!good) {
      if (out.state == SignatureState::kUnsigned) {
        out.state = SignatureState::kInvalid;
        out.signer = format_public_key(s.key);
        out.detail = fmt::format("the signature by {} does not verify: the "
                                 "signature or the manifest was altered, or "
                                 "it was made for another model",
                                 out.signer);
      }
      continue;
    }
    auto t = std::find_if(trusted.begin(), trusted.end(),
                          [&](const TrustedKey &k) { return k.key == s.key; });
    if (t != trusted.end()) {
      out.state = SignatureState::kTrusted;
      out.signer = format_public_key(s.key) +
                   (t->name.empty() ? "" : " (" + t->name + ")");
      out.detail.clear();
      return out;
    }
    out.state = SignatureState::kUntrusted;
    out.signer = format_public_key(s.key);
    out.detail.clear();
  }
  return out;
}

const char *state_name(SignatureState s) {
  switch (s) {
  case SignatureState::kTrusted:
    return "trusted";
  case SignatureState::kUntrusted:
    return "untrusted";
  case SignatureState::kUnsigned:
    return "unsigned";
  case SignatureState::kInvalid:
    return "INVALID";
  }
  return "unknown";
}

} // namespace hearth::app
