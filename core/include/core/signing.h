#pragma once
// Ed25519 signing for the gateway's device key (day seals of the audit ledger).
//
// Ownership: a KeyPair / PublicKey owns its OpenSSL EVP_PKEY; both are movable, not
// copyable. Threading: a const KeyPair or PublicKey may be used by several threads at
// once (OpenSSL 3 EVP_PKEY objects are safe for concurrent sign/verify); loading and
// saving touch only the given file.
//
// Files: the private key is stored as PKCS#8 PEM with mode 0600. Loading refuses a
// private key file that is not a regular file or is readable/writable by group or
// others (Errc::kPermission, naming the file, its mode and the fix), because a leaked
// device key lets anyone forge settlement seals.
//
// Fingerprint: SHA-256 of the raw 32-byte public key, lower-case hex (64 digits); the
// grouped form "ab12 cd34 ..." (16 groups of 4) is for reading aloud and comparing by eye.

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "core/crypto.h"
#include "core/error.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace lanegate::signing {

inline constexpr std::size_t kPublicKeySize = 32;
inline constexpr std::size_t kSignatureSize = 64;
using RawPublicKey = std::array<std::uint8_t, kPublicKeySize>;

class PublicKey {
 public:
  PublicKey(PublicKey&& other) noexcept;
  PublicKey& operator=(PublicKey&& other) noexcept;
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;
  ~PublicKey();

  // From the raw 32 bytes of an Ed25519 public key.
  [[nodiscard]] static Result<PublicKey> from_raw(std::span<const std::uint8_t> raw);
  // Accepts, after trimming whitespace: 64 hex digits, the Base64 of the raw 32 bytes,
  // or a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) block. Anything else is Errc::kParse.
  [[nodiscard]] static Result<PublicKey> parse(std::string_view text);
  // Reads a file holding one of the forms accepted by parse().
  [[nodiscard]] static Result<PublicKey> load_file(const std::filesystem::path& path);

  RawPublicKey raw() const;
  std::string hex() const;
  std::string base64() const;
  std::string pem() const;
  // SHA-256 of raw(), hex (64 digits).
  std::string fingerprint() const;

  // True only for a valid signature of `message` by this key.
  bool verify(std::span<const std::uint8_t> message, std::span<const std::uint8_t> signature) const;
  bool verify(std::string_view message, std::span<const std::uint8_t> signature) const {
    return verify(crypto::as_bytes(message), signature);
  }

 private:
  explicit PublicKey(EVP_PKEY* key) : key_(key) {}
  EVP_PKEY* key_ = nullptr;
};

class KeyPair {
 public:
  KeyPair(KeyPair&& other) noexcept;
  KeyPair& operator=(KeyPair&& other) noexcept;
  KeyPair(const KeyPair&) = delete;
  KeyPair& operator=(const KeyPair&) = delete;
  ~KeyPair();

  // A fresh key from the OpenSSL CSPRNG.
  [[nodiscard]] static Result<KeyPair> generate();
  // Loads a PKCS#8 PEM Ed25519 private key. Refuses (Errc::kPermission) a file whose
  // mode grants any access to group or others, and (Errc::kCrypto) a key of another type.
  [[nodiscard]] static Result<KeyPair> load_file(const std::filesystem::path& path);
  // Writes the key as PKCS#8 PEM with mode 0600: to a temporary file in the same
  // directory, fsync, then rename over `path` (never a half-written key file).
  // REQUIRES: the directory exists.
  [[nodiscard]] Status save_file(const std::filesystem::path& path) const;

  PublicKey public_key() const;
  // 64-byte Ed25519 signature (deterministic, RFC 8032).
  [[nodiscard]] Result<crypto::Bytes> sign(std::span<const std::uint8_t> message) const;
  [[nodiscard]] Result<crypto::Bytes> sign(std::string_view message) const {
    return sign(crypto::as_bytes(message));
  }

 private:
  explicit KeyPair(EVP_PKEY* key) : key_(key) {}
  EVP_PKEY* key_ = nullptr;
};

// "ab12 cd34 ..." from a hex fingerprint: groups of four digits separated by spaces.
std::string group_fingerprint(std::string_view hex);

}  // namespace lanegate::signing
