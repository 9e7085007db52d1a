#pragma once
// Public-key and AEAD primitives for the payment provider protocol (WeChat Pay API v3):
// RSA-2048 keys from PEM, SHA256withRSA (PKCS#1 v1.5) signatures, X.509 certificates
// (serial and public key) and AES-256-GCM. Built on the OpenSSL 3 EVP interfaces;
// OpenSSL errors are translated into Error here, once.
//
// Threading: PrivateKey, PublicKey and Certificate are immutable after loading and
// may be shared by any number of threads (each operation makes its own EVP context).
// Byte strings are passed as std::string / std::string_view holding raw bytes.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/error.h"

struct evp_pkey_st;

namespace lanegate::pki {

// An RSA private key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY" PEM).
class PrivateKey {
 public:
  PrivateKey() = default;
  bool valid() const { return key_ != nullptr; }
  evp_pkey_st* raw() const { return key_.get(); }

 private:
  friend Result<PrivateKey> private_key_from_pem(std::string_view pem);
  std::shared_ptr<evp_pkey_st> key_;
};

// An RSA public key.
class PublicKey {
 public:
  PublicKey() = default;
  bool valid() const { return key_ != nullptr; }
  evp_pkey_st* raw() const { return key_.get(); }
  // Internal: takes ownership of an EVP_PKEY (used by the loaders).
  static PublicKey adopt(evp_pkey_st* key);

 private:
  std::shared_ptr<evp_pkey_st> key_;
};

struct Certificate {
  std::string serial_hex;  // upper-case hex (BN_bn2hex), as WeChat prints serial_no
  PublicKey public_key;
  SystemTime not_before{};
  SystemTime not_after{};
  std::string pem;  // the certificate as loaded
};

// Reads a whole file (PEM, key file). Errors name the path.
[[nodiscard]] Result<std::string> read_file(const std::filesystem::path& path);

// REQUIRES: RSA key of at least 2048 bits (smaller keys are refused).
[[nodiscard]] Result<PrivateKey> private_key_from_pem(std::string_view pem);
[[nodiscard]] Result<PrivateKey> load_private_key(const std::filesystem::path& path);

// Accepts "PUBLIC KEY" PEM or a "CERTIFICATE" PEM (its public key is used).
[[nodiscard]] Result<PublicKey> public_key_from_pem(std::string_view pem);
[[nodiscard]] Result<PublicKey> load_public_key(const std::filesystem::path& path);
// The public half of a private key.
[[nodiscard]] Result<PublicKey> public_key_of(const PrivateKey& key);
// "-----BEGIN PUBLIC KEY-----..." of a key.
[[nodiscard]] Result<std::string> public_key_to_pem(const PublicKey& key);

[[nodiscard]] Result<Certificate> certificate_from_pem(std::string_view pem);
[[nodiscard]] Result<Certificate> load_certificate(const std::filesystem::path& path);

// SHA256withRSA (RSASSA-PKCS1-v1_5) over `message`; returns the Base64 of the signature.
[[nodiscard]] Result<std::string> sign_sha256_rsa_base64(const PrivateKey& key,
                                                         std::string_view message);
// Ok only when `signature_base64` is valid Base64 and a valid signature of `message`.
// Errc::kCrypto when the signature does not match, kParse when it is not Base64.
[[nodiscard]] Status verify_sha256_rsa_base64(const PublicKey& key, std::string_view message,
                                              std::string_view signature_base64);

inline constexpr std::size_t kAesGcmTagBytes = 16;

// AES-256-GCM. REQUIRES: key is 32 bytes; nonce is non-empty (WeChat uses 12 bytes).
// Returns ciphertext followed by the 16-byte tag.
[[nodiscard]] Result<std::string> aes256gcm_encrypt(std::string_view key, std::string_view nonce,
                                                    std::string_view aad,
                                                    std::string_view plaintext);
// `sealed` is ciphertext followed by the tag; kCrypto when the tag does not match.
[[nodiscard]] Result<std::string> aes256gcm_decrypt(std::string_view key, std::string_view nonce,
                                                    std::string_view aad, std::string_view sealed);

// Lower-case hex SHA-1 (the trade bill's hash_type). Not for security decisions.
std::string sha1_hex(std::string_view data);

}  // namespace lanegate::pki
