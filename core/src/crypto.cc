#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

namespace lanegate::crypto {

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

Sha256Digest sha256(std::span<const std::uint8_t> data) {
  Sha256Digest out;
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Sha256Digest sha256(std::string_view data) { return sha256(as_bytes(data)); }

std::string sha256_hex(std::string_view data) { return hex_encode(sha256(data)); }

Sha256Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  Sha256Digest out;
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len);
  return out;
}

Sha1Digest hmac_sha1(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  Sha1Digest out;
  unsigned int len = 0;
  HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(), &len);
  return out;
}

std::string hex_encode(std::span<const std::uint8_t> data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (std::uint8_t b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

Result<Bytes> hex_decode(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) {
    return fail(Errc::kParse, "hex text has an odd number of digits");
  }
  Bytes out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return fail(Errc::kParse, "not a hex digit at offset " + std::to_string(hi < 0 ? i : i + 1));
    }
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return out;
}

std::string base64_encode(std::span<const std::uint8_t> data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_encode(std::string_view data) { return base64_encode(as_bytes(data)); }

Result<Bytes> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return fail(Errc::kParse, "Base64 length is not a multiple of 4");
  }
  std::size_t pad = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                       c == '/';
    if (c == '=') {
      if (i + 2 < text.size()) {
        return fail(Errc::kParse, "Base64 padding in the middle");
      }
      ++pad;
    } else if (!alpha || pad > 0) {
      return fail(Errc::kParse, "invalid Base64 character at offset " + std::to_string(i));
    }
  }
  Bytes out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return fail(Errc::kParse, "invalid Base64");
  }
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

Result<Bytes> random_bytes(std::size_t n) {
  Bytes out(n);
  if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
    return fail(Errc::kCrypto, "RAND_bytes failed: " + last_openssl_error());
  }
  return out;
}

Result<std::string> random_token(std::size_t n) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    auto bytes = random_bytes(n);
    if (!bytes) return std::unexpected(bytes.error());
    for (std::uint8_t b : *bytes) {
      if (b < 248 && out.size() < n) {  // 248 = 4 * 62: no modulo bias
        out.push_back(kAlphabet[b % 62]);
      }
    }
  }
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string last_openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

}  // namespace lanegate::crypto
