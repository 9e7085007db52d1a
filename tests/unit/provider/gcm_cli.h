#pragma once
// AES-256-GCM built from the openssl CLI, independently of core/pki: `openssl enc`
// refuses AEAD ciphers, but GCM (NIST SP 800-38D) is AES-CTR starting at counter
// J0+1 (J0 = nonce || 00000001 for a 96-bit nonce) plus a tag GHASH_H(A, C) xor E_K(J0)
// with H = E_K(0^128). The CLI does every AES operation (aes-256-ctr, aes-256-ecb);
// only the GF(2^128) multiply of GHASH is written here, from the standard. The helper is
// checked against the published GCM test case 16 before it is trusted.

#include <cstdint>
#include <string>

#include "provider_test_support.h"

namespace provider_test {

inline std::string to_hex(const std::string& bytes) {
  static const char* k = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += k[c >> 4];
    out += k[c & 15];
  }
  return out;
}

inline std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// AES with the CLI: mode "aes-256-ctr" or "aes-256-ecb" (no padding).
inline std::string cli_aes(const std::string& mode, const std::string& key, const std::string& iv,
                           const std::string& data, const std::filesystem::path& scratch) {
  write_file(scratch / "aes-in.bin", data);
  std::string cmd = "openssl enc -" + mode + " -nopad -K " + to_hex(key);
  if (!iv.empty()) {
    cmd += " -iv " + to_hex(iv);
  }
  cmd += " -in " + shell_quote((scratch / "aes-in.bin").string()) + " -out " +
         shell_quote((scratch / "aes-out.bin").string());
  int rc = 0;
  run(cmd + " 2>/dev/null", &rc);
  EXPECT_EQ(rc, 0) << cmd;
  return read_file(scratch / "aes-out.bin");
}

struct Block {
  std::uint64_t hi = 0, lo = 0;
};

inline Block load_block(const std::string& s, std::size_t at) {
  Block b;
  for (int i = 0; i < 16; ++i) {
    std::uint64_t byte = at + i < s.size() ? static_cast<unsigned char>(s[at + i]) : 0;
    if (i < 8) {
      b.hi |= byte << (56 - 8 * i);
    } else {
      b.lo |= byte << (56 - 8 * (i - 8));
    }
  }
  return b;
}

// X * Y in GF(2^128), SP 800-38D Algorithm 1 (bit 0 is the most significant bit).
inline Block gf_mul(Block x, Block y) {
  Block z{}, v = y;
  for (int i = 0; i < 128; ++i) {
    bool bit = i < 64 ? ((x.hi >> (63 - i)) & 1) : ((x.lo >> (127 - i)) & 1);
    if (bit) {
      z.hi ^= v.hi;
      z.lo ^= v.lo;
    }
    bool lsb = v.lo & 1;
    v.lo = (v.lo >> 1) | (v.hi << 63);
    v.hi >>= 1;
    if (lsb) {
      v.hi ^= 0xE100000000000000ULL;
    }
  }
  return z;
}

inline std::string block_bytes(Block b) {
  std::string out(16, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(b.hi >> (56 - 8 * i));
    out[8 + i] = static_cast<char>(b.lo >> (56 - 8 * i));
  }
  return out;
}

// Returns ciphertext || tag. REQUIRES: key 32 bytes, nonce 12 bytes.
inline std::string cli_gcm_seal(const std::string& key, const std::string& nonce,
                                const std::string& aad, const std::string& plain,
                                const std::filesystem::path& scratch) {
  std::string j0 = nonce + std::string("\x00\x00\x00\x01", 4);
  std::string j1 = nonce + std::string("\x00\x00\x00\x02", 4);
  std::string cipher = plain.empty() ? "" : cli_aes("aes-256-ctr", key, j1, plain, scratch);
  Block h = load_block(cli_aes("aes-256-ecb", key, "", std::string(16, '\0'), scratch), 0);
  std::string ej0 = cli_aes("aes-256-ecb", key, "", j0, scratch);
  Block y{};
  auto absorb = [&](const std::string& data) {
    for (std::size_t at = 0; at < data.size(); at += 16) {
      Block x = load_block(data, at);
      y.hi ^= x.hi;
      y.lo ^= x.lo;
      y = gf_mul(y, h);
    }
  };
  absorb(aad);
  absorb(cipher);
  Block lengths{static_cast<std::uint64_t>(aad.size()) * 8,
                static_cast<std::uint64_t>(cipher.size()) * 8};
  y.hi ^= lengths.hi;
  y.lo ^= lengths.lo;
  y = gf_mul(y, h);
  std::string tag = block_bytes(y);
  for (int i = 0; i < 16; ++i) {
    tag[i] = static_cast<char>(tag[i] ^ ej0[i]);
  }
  return cipher + tag;
}

}  // namespace provider_test
