#include "core/signing.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

namespace lanegate::signing {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string errno_text(int e) { return std::strerror(e); }

std::string mode_octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

// ---- PublicKey ----

PublicKey::PublicKey(PublicKey&& other) noexcept : key_(std::exchange(other.key_, nullptr)) {}

PublicKey& PublicKey::operator=(PublicKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(key_);
    key_ = std::exchange(other.key_, nullptr);
  }
  return *this;
}

PublicKey::~PublicKey() { EVP_PKEY_free(key_); }

Result<PublicKey> PublicKey::from_raw(std::span<const std::uint8_t> raw) {
  if (raw.size() != kPublicKeySize) {
    return fail(Errc::kInvalidArgument,
                "an Ed25519 public key is 32 bytes, got " + std::to_string(raw.size()),
                "public_key");
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size());
  if (key == nullptr) {
    return fail(Errc::kCrypto, "not an Ed25519 public key: " + crypto::last_openssl_error(),
                "public_key");
  }
  return PublicKey(key);
}

Result<PublicKey> PublicKey::parse(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.starts_with("-----BEGIN")) {
    BioPtr bio(BIO_new_mem_buf(t.data(), static_cast<int>(t.size())));
    EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    if (key == nullptr) {
      return fail(Errc::kParse,
                  "PEM text is not a PUBLIC KEY block: " + crypto::last_openssl_error(),
                  "public_key");
    }
    if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
      EVP_PKEY_free(key);
      return fail(Errc::kCrypto, "the PEM public key is not an Ed25519 key", "public_key");
    }
    return PublicKey(key);
  }
  if (t.size() == 2 * kPublicKeySize) {
    if (auto raw = crypto::hex_decode(t)) {
      return from_raw(*raw);
    }
  }
  if (t.size() == 44) {
    if (auto raw = crypto::base64_decode(t)) {
      return from_raw(*raw);
    }
  }
  return fail(Errc::kParse,
              "expected an Ed25519 public key as 64 hex digits, Base64 of 32 bytes or a PEM "
              "PUBLIC KEY block",
              "public_key");
}

Result<PublicKey> PublicKey::load_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kIo,
                "cannot read public key file " + path.string() + ": " + errno_text(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  auto key = parse(ss.str());
  if (!key) {
    return fail(key.error().code, path.string() + ": " + key.error().message, "public_key");
  }
  return key;
}

RawPublicKey PublicKey::raw() const {
  RawPublicKey out{};
  std::size_t len = out.size();
  // Cannot fail for an Ed25519 key with a 32-byte buffer; a failure is a broken invariant.
  if (EVP_PKEY_get_raw_public_key(key_, out.data(), &len) != 1 || len != out.size()) {
    std::abort();
  }
  return out;
}

std::string PublicKey::hex() const { return crypto::hex_encode(raw()); }

std::string PublicKey::base64() const { return crypto::base64_encode(raw()); }

std::string PublicKey::pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PUBKEY(bio.get(), key_) != 1) {
    std::abort();
  }
  return bio_to_string(bio.get());
}

std::string PublicKey::fingerprint() const {
  const RawPublicKey r = raw();
  return crypto::hex_encode(crypto::sha256(std::span<const std::uint8_t>(r)));
}

bool PublicKey::verify(std::span<const std::uint8_t> message,
                       std::span<const std::uint8_t> signature) const {
  if (signature.size() != kSignatureSize) {
    return false;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_) != 1) {
    crypto::last_openssl_error();
    return false;
  }
  const int rc = EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                                  message.size());
  if (rc != 1) {
    crypto::last_openssl_error();  // clear the queue: a bad signature is an answer, not an error
  }
  return rc == 1;
}

// ---- KeyPair ----

KeyPair::KeyPair(KeyPair&& other) noexcept : key_(std::exchange(other.key_, nullptr)) {}

KeyPair& KeyPair::operator=(KeyPair&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(key_);
    key_ = std::exchange(other.key_, nullptr);
  }
  return *this;
}

KeyPair::~KeyPair() { EVP_PKEY_free(key_); }

Result<KeyPair> KeyPair::generate() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) {
    return fail(Errc::kCrypto, "Ed25519 key generation failed: " + crypto::last_openssl_error());
  }
  return KeyPair(key);
}

Result<KeyPair> KeyPair::load_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int e = errno;
    return fail(e == ENOENT ? Errc::kNotFound : (e == EACCES ? Errc::kPermission : Errc::kIo),
                "cannot open private key file " + path.string() + ": " + errno_text(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return fail(Errc::kIo, "cannot stat private key file " + path.string() + ": " + errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(Errc::kPermission, "private key " + path.string() + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return fail(Errc::kPermission, "private key file " + path.string() + " has mode " +
                                       mode_octal(st.st_mode) +
                                       ": it must not be accessible by group or others; run "
                                       "chmod 600 " +
                                       path.string() + " (and consider the key leaked)");
  }
  std::string pem;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int e = errno;
      ::close(fd);
      OPENSSL_cleanse(pem.data(), pem.size());
      return fail(Errc::kIo,
                  "cannot read private key file " + path.string() + ": " + errno_text(e));
    }
    if (n == 0) {
      break;
    }
    pem.append(buf, static_cast<std::size_t>(n));
    if (pem.size() > 64 * 1024) {
      break;
    }
  }
  ::close(fd);
  OPENSSL_cleanse(buf, sizeof buf);
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (key == nullptr) {
    return fail(Errc::kCrypto,
                "private key file " + path.string() +
                    " does not hold a PEM private key: " + crypto::last_openssl_error());
  }
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return fail(Errc::kCrypto, "private key file " + path.string() + " is not an Ed25519 key");
  }
  return KeyPair(key);
}

Status KeyPair::save_file(const std::filesystem::path& path) const {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail(Errc::kCrypto, "cannot encode the private key: " + crypto::last_openssl_error());
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  const std::filesystem::path tmp = path.string() + ".tmp";
  // O_EXCL: never write into a file someone else prepared (and possibly opened).
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return fail(Errc::kIo, "cannot create " + tmp.string() + ": " + errno_text(errno));
  }
  auto fail_io = [&](std::string what) -> Status {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(Errc::kIo, what + " " + tmp.string() + ": " + errno_text(e));
  };
  // The umask may have narrowed the mode but never widens it; set it exactly anyway.
  if (::fchmod(fd, 0600) != 0) {
    return fail_io("cannot chmod");
  }
  long written = 0;
  while (written < len) {
    const ssize_t n = ::write(fd, data + written, static_cast<std::size_t>(len - written));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return fail_io("cannot write");
    }
    written += n;
  }
  if (::fsync(fd) != 0) {
    return fail_io("cannot fsync");
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::kIo,
                "cannot rename " + tmp.string() + " to " + path.string() + ": " + errno_text(e));
  }
  // Make the rename durable: fsync the directory.
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

PublicKey KeyPair::public_key() const {
  RawPublicKey raw{};
  std::size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key_, raw.data(), &len) != 1 || len != raw.size()) {
    std::abort();
  }
  auto key = PublicKey::from_raw(raw);
  if (!key) {
    std::abort();
  }
  return std::move(*key);
}

Result<crypto::Bytes> KeyPair::sign(std::span<const std::uint8_t> message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_) != 1) {
    return fail(Errc::kCrypto, "Ed25519 sign init failed: " + crypto::last_openssl_error());
  }
  crypto::Bytes sig(kSignatureSize);
  std::size_t len = sig.size();
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1 ||
      len != kSignatureSize) {
    return fail(Errc::kCrypto, "Ed25519 signing failed: " + crypto::last_openssl_error());
  }
  return sig;
}

std::string group_fingerprint(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (i > 0 && i % 4 == 0) {
      out.push_back(' ');
    }
    out.push_back(hex[i]);
  }
  return out;
}

}  // namespace lanegate::signing
