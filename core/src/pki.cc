// OpenSSL 3 EVP implementation of core/pki.h. Every OpenSSL failure is turned into an
// Error carrying the OpenSSL error string here, and nowhere else.
#include "core/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <fstream>
#include <sstream>

#include "core/crypto.h"

namespace lanegate::pki {
namespace {

Error openssl_error(Errc code, std::string_view what) {
  std::string detail = crypto::last_openssl_error();
  std::string message(what);
  if (!detail.empty()) {
    message += ": " + detail;
  }
  return Error{code, std::move(message), {}};
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

BioPtr memory_bio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::shared_ptr<evp_pkey_st> share_key(EVP_PKEY* key) {
  return std::shared_ptr<evp_pkey_st>(key, [](EVP_PKEY* k) { EVP_PKEY_free(k); });
}

Status check_rsa_2048(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    return fail(Errc::kCrypto, "key is not an RSA key");
  }
  if (EVP_PKEY_get_bits(key) < 2048) {
    return fail(Errc::kCrypto, "RSA key shorter than 2048 bits");
  }
  return {};
}

SystemTime asn1_time_to_system(const ASN1_TIME* t) {
  struct tm tm_value {};
  if (ASN1_TIME_to_tm(t, &tm_value) != 1) {
    return SystemTime{};
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm_value));
}

}  // namespace

PublicKey PublicKey::adopt(evp_pkey_st* key) {
  PublicKey out;
  out.key_ = share_key(key);
  return out;
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kIo, "cannot open file", path.string());
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return fail(Errc::kIo, "cannot read file", path.string());
  }
  return buffer.str();
}

Result<PrivateKey> private_key_from_pem(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return std::unexpected(openssl_error(Errc::kCrypto, "not a PEM private key"));
  }
  PrivateKey out;
  out.key_ = share_key(key);
  if (auto ok = check_rsa_2048(key); !ok) {
    return std::unexpected(ok.error());
  }
  return out;
}

Result<PrivateKey> load_private_key(const std::filesystem::path& path) {
  auto pem = read_file(path);
  if (!pem) {
    return std::unexpected(pem.error());
  }
  auto key = private_key_from_pem(*pem);
  if (!key) {
    auto e = key.error();
    e.field = path.string();
    return std::unexpected(e);
  }
  return key;
}

Result<PublicKey> public_key_from_pem(std::string_view pem) {
  if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    auto cert = certificate_from_pem(pem);
    if (!cert) {
      return std::unexpected(cert.error());
    }
    return cert->public_key;
  }
  BioPtr bio = memory_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) {
    return std::unexpected(openssl_error(Errc::kCrypto, "not a PEM public key or certificate"));
  }
  PublicKey out = PublicKey::adopt(key);
  if (auto ok = check_rsa_2048(key); !ok) {
    return std::unexpected(ok.error());
  }
  return out;
}

Result<PublicKey> load_public_key(const std::filesystem::path& path) {
  auto pem = read_file(path);
  if (!pem) {
    return std::unexpected(pem.error());
  }
  auto key = public_key_from_pem(*pem);
  if (!key) {
    auto e = key.error();
    e.field = path.string();
    return std::unexpected(e);
  }
  return key;
}

Result<PublicKey> public_key_of(const PrivateKey& key) {
  if (!key.valid()) {
    return fail(Errc::kInvalidArgument, "empty private key");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.raw()) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "cannot export public key"));
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return public_key_from_pem(std::string_view(data, static_cast<std::size_t>(n)));
}

Result<std::string> public_key_to_pem(const PublicKey& key) {
  if (!key.valid()) {
    return fail(Errc::kInvalidArgument, "empty public key");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key.raw()) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "cannot export public key"));
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Result<Certificate> certificate_from_pem(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  X509Ptr x509(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x509) {
    return std::unexpected(openssl_error(Errc::kCrypto, "not a PEM certificate"));
  }
  Certificate cert;
  const ASN1_INTEGER* serial = X509_get0_serialNumber(x509.get());
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) {
    return std::unexpected(openssl_error(Errc::kCrypto, "certificate serial unreadable"));
  }
  char* hex = BN_bn2hex(bn);
  BN_free(bn);
  if (hex == nullptr) {
    return std::unexpected(openssl_error(Errc::kCrypto, "certificate serial unreadable"));
  }
  cert.serial_hex = hex;
  OPENSSL_free(hex);
  // BN_bn2hex pads to whole bytes ("0ABC"); serial_no is printed without leading zeros.
  while (cert.serial_hex.size() > 1 && cert.serial_hex.front() == '0') {
    cert.serial_hex.erase(0, 1);
  }
  EVP_PKEY* key = X509_get_pubkey(x509.get());  // new reference
  if (key == nullptr) {
    return std::unexpected(openssl_error(Errc::kCrypto, "certificate has no public key"));
  }
  cert.public_key = PublicKey::adopt(key);
  if (auto ok = check_rsa_2048(key); !ok) {
    return std::unexpected(ok.error());
  }
  cert.not_before = asn1_time_to_system(X509_get0_notBefore(x509.get()));
  cert.not_after = asn1_time_to_system(X509_get0_notAfter(x509.get()));
  cert.pem = std::string(pem);
  return cert;
}

Result<Certificate> load_certificate(const std::filesystem::path& path) {
  auto pem = read_file(path);
  if (!pem) {
    return std::unexpected(pem.error());
  }
  auto cert = certificate_from_pem(*pem);
  if (!cert) {
    auto e = cert.error();
    e.field = path.string();
    return std::unexpected(e);
  }
  return cert;
}

Result<std::string> sign_sha256_rsa_base64(const PrivateKey& key, std::string_view message) {
  if (!key.valid()) {
    return fail(Errc::kInvalidArgument, "empty private key");
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.raw()) != 1 ||
      EVP_DigestSignUpdate(ctx.get(), message.data(), message.size()) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "SHA256withRSA sign init failed"));
  }
  std::size_t length = 0;
  if (EVP_DigestSignFinal(ctx.get(), nullptr, &length) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "SHA256withRSA sign failed"));
  }
  std::string signature(length, '\0');
  if (EVP_DigestSignFinal(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length) !=
      1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "SHA256withRSA sign failed"));
  }
  signature.resize(length);
  return crypto::base64_encode(std::string_view(signature));
}

Status verify_sha256_rsa_base64(const PublicKey& key, std::string_view message,
                                std::string_view signature_base64) {
  if (!key.valid()) {
    return fail(Errc::kInvalidArgument, "empty public key");
  }
  auto signature = crypto::base64_decode(signature_base64);
  if (!signature) {
    return fail(Errc::kParse, "signature is not Base64", "signature");
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.raw()) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "SHA256withRSA verify init failed"));
  }
  int rc = EVP_DigestVerify(ctx.get(), signature->data(), signature->size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  if (rc != 1) {
    return fail(Errc::kCrypto, "SHA256withRSA signature does not match", "signature");
  }
  return {};
}

Result<std::string> aes256gcm_encrypt(std::string_view key, std::string_view nonce,
                                      std::string_view aad, std::string_view plaintext) {
  if (key.size() != 32) {
    return fail(Errc::kInvalidArgument, "AES-256-GCM key must be 32 bytes", "key");
  }
  if (nonce.empty()) {
    return fail(Errc::kInvalidArgument, "AES-256-GCM nonce must not be empty", "nonce");
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, k, n) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM init failed"));
  }
  if (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len,
                                        reinterpret_cast<const unsigned char*>(aad.data()),
                                        static_cast<int>(aad.size())) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM aad failed"));
  }
  std::string out(plaintext.size() + kAesGcmTagBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_EncryptUpdate(ctx.get(), o, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM encrypt failed"));
  }
  int total = len;
  if (EVP_EncryptFinal_ex(ctx.get(), o + total, &len) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM final failed"));
  }
  total += len;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAesGcmTagBytes, o + total) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM tag failed"));
  }
  out.resize(static_cast<std::size_t>(total) + kAesGcmTagBytes);
  return out;
}

Result<std::string> aes256gcm_decrypt(std::string_view key, std::string_view nonce,
                                      std::string_view aad, std::string_view sealed) {
  if (key.size() != 32) {
    return fail(Errc::kInvalidArgument, "AES-256-GCM key must be 32 bytes", "key");
  }
  if (nonce.empty()) {
    return fail(Errc::kInvalidArgument, "AES-256-GCM nonce must not be empty", "nonce");
  }
  if (sealed.size() < kAesGcmTagBytes) {
    return fail(Errc::kCrypto, "AES-256-GCM input shorter than its tag", "ciphertext");
  }
  std::string_view body = sealed.substr(0, sealed.size() - kAesGcmTagBytes);
  std::string tag(sealed.substr(sealed.size() - kAesGcmTagBytes));
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, k, n) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM init failed"));
  }
  if (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len,
                                        reinterpret_cast<const unsigned char*>(aad.data()),
                                        static_cast<int>(aad.size())) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM aad failed"));
  }
  std::string out(body.size() + kAesGcmTagBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_DecryptUpdate(ctx.get(), o, &len, reinterpret_cast<const unsigned char*>(body.data()),
                        static_cast<int>(body.size())) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM decrypt failed"));
  }
  int total = len;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAesGcmTagBytes, tag.data()) != 1) {
    return std::unexpected(openssl_error(Errc::kCrypto, "AES-256-GCM set tag failed"));
  }
  if (EVP_DecryptFinal_ex(ctx.get(), o + total, &len) != 1) {
    ERR_clear_error();
    return fail(Errc::kCrypto, "AES-256-GCM tag does not match (wrong key, nonce, aad or data)",
                "ciphertext");
  }
  total += len;
  out.resize(static_cast<std::size_t>(total));
  return out;
}

std::string sha1_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha1(), nullptr);
  return crypto::hex_encode(std::span<const std::uint8_t>(digest, length));
}

}  // namespace lanegate::pki
