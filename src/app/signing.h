// Ed25519 signatures (libsodium) over the identity of a model in the store, and
// the list of public keys the user trusts.
//
// Files under the data directory (app/paths.h):
//   signing.key                  the user's secret key, "ed25519-secret:<128
//   hex>\n", mode 0600 trusted_keys.json            {"format":
//   "hearth-trusted-keys-v1",
//                                 "keys": [{"key": "ed25519:<hex>", "name":
//                                 LABEL, "added_at": T}]}
//   manifests/<name>.sig         {"format": "hearth-model-signatures-v1",
//                                 "signatures": [{"version", "sha256", "key",
//                                 "signature"}]}
//
// Public keys are written "ed25519:" followed by 64 lowercase hex digits (32
// bytes).
//
// What is signed (signing_message): a domain-separation line, then the model's
// name, version number, SHA-256 and size, one per line. Verification always
// rebuilds this message from the manifest; the fields stored beside a signature
// only select which version it is for. So a signature copied from another
// model, a changed manifest or a flipped signature byte all fail to verify.
//
// Invariants: the secret key file is only ever written with mode 0600 and never
// replaced without `force`; every file here is written atomically
// (platform/secure_file.h). Thread safety: none; these are called from one CLI
// command at a time.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "app/model_store.h"
#include "platform/status.h"

namespace hearth::app {

using PublicKey = std::array<unsigned char, 32>;

// "ed25519:<64 hex>".
std::string format_public_key(const PublicKey &key);
// Parses the form above (hex in either case); an error names what is wrong.
Expected<PublicKey> parse_public_key(std::string_view text);

// The bytes that a model signature covers.
std::string signing_message(const std::string &name, const ModelVersion &v);

// Makes a new key pair and stores the secret key (0600) in
// DATA_DIR/signing.key; refuses to replace an existing one unless `force`.
// Returns the public key.
Expected<PublicKey> generate_signing_key(const std::string &data_dir,
                                         bool force);
// The public key of the stored secret key.
Expected<PublicKey> signing_public_key(const std::string &data_dir);
std::string signing_key_path(const std::string &data_dir);

struct TrustedKey {
  PublicKey key{};
  std::string name; // the user's label ("" when none was given)
  int64_t added_at = 0;
};

Expected<std::vector<TrustedKey>>
load_trusted_keys(const std::string &data_dir);
// Adds KEY (or renames it when it is already trusted). Labels are at most 64
// printable characters.
Status trust_key(const std::string &data_dir, const PublicKey &key,
                 const std::string &name);
// Removes the key given as "ed25519:..." or by its label; an error when nothing
// matches.
Expected<TrustedKey> untrust_key(const std::string &data_dir,
                                 const std::string &key_or_name);

// Signs NAME's current version with the stored secret key and records the
// signature in manifests/NAME.sig (replacing an earlier signature by the same
// key for that version).
Expected<PublicKey> sign_model(ModelStore &store, const std::string &name);

enum class SignatureState {
  kUnsigned,  // no signature for this version
  kUntrusted, // a valid signature, by a key not in trusted_keys.json
  kTrusted,   // a valid signature by a trusted key
  kInvalid,   // a signature for this version that does not verify (tampered or
              // copied)
};

struct SignatureCheck {
  SignatureState state = SignatureState::kUnsigned;
  std::string
      signer; // the key (and label when trusted) of the best signature found
  std::string detail; // why, for kInvalid
};

// The signature state of the manifest's current version. Trusted beats
// untrusted beats invalid: one good trusted signature is enough.
Expected<SignatureCheck>
check_signature(const ModelStore &store, const ModelManifest &m,
                const std::vector<TrustedKey> &trusted);

// One word for tables: "trusted", "untrusted", "unsigned", "INVALID".
const char *state_name(SignatureState s);

} // namespace hearth::app
