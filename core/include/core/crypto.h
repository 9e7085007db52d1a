#pragma once
// OpenSSL helpers shared by the modules. OpenSSL errors are translated here, once.

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lanegate::crypto {

using Bytes = std::vector<std::uint8_t>;
using Sha256Digest = std::array<std::uint8_t, 32>;
using Sha1Digest = std::array<std::uint8_t, 20>;

std::span<const std::uint8_t> as_bytes(std::string_view s);

Sha256Digest sha256(std::span<const std::uint8_t> data);
Sha256Digest sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
Sha256Digest hmac_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);
// HMAC-SHA1: only where a remote protocol mandates it (the invoicing platform's X-Nuonuo-Sign).
Sha1Digest hmac_sha1(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);

std::string hex_encode(std::span<const std::uint8_t> data);
[[nodiscard]] Result<Bytes> hex_decode(std::string_view hex);
std::string base64_encode(std::span<const std::uint8_t> data);
std::string base64_encode(std::string_view data);
// Strict: rejects characters outside the alphabet and bad padding.
[[nodiscard]] Result<Bytes> base64_decode(std::string_view text);

// Cryptographically secure random bytes (RAND_bytes).
[[nodiscard]] Result<Bytes> random_bytes(std::size_t n);
// Random string over [0-9A-Za-z] of length n (nonces).
[[nodiscard]] Result<std::string> random_token(std::size_t n);

// Constant-time comparison.
bool equal_constant_time(std::string_view a, std::string_view b);

// Last OpenSSL error queue entry, cleared.
std::string last_openssl_error();

}  // namespace lanegate::crypto
