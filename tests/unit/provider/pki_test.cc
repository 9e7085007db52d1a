// core/pki against independent implementations: the openssl CLI (signatures,
// certificates, AES via the GCM construction in gcm_cli.h) and published GCM vectors.
#include "core/pki.h"

#include <gtest/gtest.h>

#include "core/crypto.h"
#include "gcm_cli.h"
#include "provider_test_support.h"

namespace lanegate {
namespace {

using provider_test::from_hex;
using provider_test::to_hex;

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 14 and 16
// (AES-256, 96-bit IV); also NIST SP 800-38D example vectors.
constexpr const char* kKey16 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr const char* kIv16 = "cafebabefacedbaddecaf888";
constexpr const char* kPlain16 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
    "49a6b525b16aedf5aa0de657ba637b39";
constexpr const char* kAad16 = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
constexpr const char* kCipher16 =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b10"
    "56828838c5f61e6393ba7a0abcc9f662";
constexpr const char* kTag16 = "76fc6ece0f4e1768cddf8853bb2d551b";

TEST(PkiGcm, DecryptsThePublishedVectorWithAad) {
  auto plain = pki::aes256gcm_decrypt(from_hex(kKey16), from_hex(kIv16), from_hex(kAad16),
                                      from_hex(kCipher16) + from_hex(kTag16));
  ASSERT_TRUE(plain) << plain.error().to_string();
  EXPECT_EQ(to_hex(*plain), kPlain16);
}

TEST(PkiGcm, EncryptsThePublishedVectors) {
  auto sealed = pki::aes256gcm_encrypt(from_hex(kKey16), from_hex(kIv16), from_hex(kAad16),
                                       from_hex(kPlain16));
  ASSERT_TRUE(sealed);
  EXPECT_EQ(to_hex(*sealed), std::string(kCipher16) + kTag16);
  // Test case 14: zero key, zero IV, one zero block, no AAD.
  auto zero = pki::aes256gcm_encrypt(std::string(32, '\0'), std::string(12, '\0'), "",
                                     std::string(16, '\0'));
  ASSERT_TRUE(zero);
  EXPECT_EQ(to_hex(*zero), "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
}

TEST(PkiGcm, CliConstructionReproducesThePublishedVector) {
  provider_test::TempDir scratch;
  std::string sealed = provider_test::cli_gcm_seal(
      from_hex(kKey16), from_hex(kIv16), from_hex(kAad16), from_hex(kPlain16), scratch.path());
  EXPECT_EQ(to_hex(sealed), std::string(kCipher16) + kTag16);
}

TEST(PkiGcm, DecryptsWhatTheCliSealedWithWeChatShapedInputs) {
  provider_test::TempDir scratch;
  const std::string key = "0123456789abcdefABCDEFGHIJKLmnop";  // 32 characters, as APIv3 keys
  const std::string nonce = "a1b2c3d4e5f6";                    // 12 characters
  const std::string aad = "transaction";
  const std::string plain =
      R"({"out_trade_no":"LG0001","trade_state":"SUCCESS","amount":{"total":1500}})";
  std::string sealed = provider_test::cli_gcm_seal(key, nonce, aad, plain, scratch.path());
  auto opened = pki::aes256gcm_decrypt(key, nonce, aad, sealed);
  ASSERT_TRUE(opened) << opened.error().to_string();
  EXPECT_EQ(*opened, plain);
  // Empty associated data is allowed by the spec.
  std::string no_aad = provider_test::cli_gcm_seal(key, nonce, "", plain, scratch.path());
  auto opened2 = pki::aes256gcm_decrypt(key, nonce, "", no_aad);
  ASSERT_TRUE(opened2);
  EXPECT_EQ(*opened2, plain);
}

TEST(PkiGcm, RefusesEveryChange) {
  const std::string key(32, 'k');
  const std::string nonce = "nonce1234567";
  auto sealed = pki::aes256gcm_encrypt(key, nonce, "aad", "twelve fen");
  ASSERT_TRUE(sealed);
  std::string flipped = *sealed;
  flipped[0] = static_cast<char>(flipped[0] ^ 1);
  EXPECT_FALSE(pki::aes256gcm_decrypt(key, nonce, "aad", flipped));
  std::string tag_flipped = *sealed;
  tag_flipped.back() = static_cast<char>(tag_flipped.back() ^ 1);
  EXPECT_FALSE(pki::aes256gcm_decrypt(key, nonce, "aad", tag_flipped));
  EXPECT_FALSE(pki::aes256gcm_decrypt(key, nonce, "AAD", *sealed));
  EXPECT_FALSE(pki::aes256gcm_decrypt(key, "nonce1234568", "aad", *sealed));
  EXPECT_FALSE(pki::aes256gcm_decrypt(std::string(32, 'K'), nonce, "aad", *sealed));
  EXPECT_FALSE(pki::aes256gcm_decrypt(key, nonce, "aad", sealed->substr(0, 10)));
  auto short_key = pki::aes256gcm_encrypt("short", nonce, "", "x");
  ASSERT_FALSE(short_key);
  EXPECT_EQ(short_key.error().field, "key");
}

TEST(PkiSignature, CliVerifiesOurSignatureAndWeVerifyTheClis) {
  const auto& dir = provider_test::demo_pki();
  provider_test::TempDir scratch;
  auto key = pki::load_private_key(dir / "merchant.key");
  ASSERT_TRUE(key) << key.error().to_string();
  const std::string message =
      "GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n";
  auto ours = pki::sign_sha256_rsa_base64(*key, message);
  ASSERT_TRUE(ours);
  provider_test::run("openssl x509 -in " + (dir / "merchant.pem").string() + " -pubkey -noout > " +
                     (scratch.path() / "merchant.pub").string());
  EXPECT_TRUE(provider_test::openssl_verify(scratch.path() / "merchant.pub", message, *ours,
                                            scratch.path()));
  EXPECT_FALSE(provider_test::openssl_verify(scratch.path() / "merchant.pub", message + "x", *ours,
                                             scratch.path()));

  std::string theirs = provider_test::openssl_sign(dir / "platform.key", message, scratch.path());
  auto platform = pki::load_public_key(dir / "platform.pem");  // certificate PEM accepted
  ASSERT_TRUE(platform);
  EXPECT_TRUE(pki::verify_sha256_rsa_base64(*platform, message, theirs));
  EXPECT_FALSE(pki::verify_sha256_rsa_base64(*platform, message + " ", theirs));
  auto wrong = pki::load_public_key(dir / "pubkey.pub.pem");
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(pki::verify_sha256_rsa_base64(*wrong, message, theirs));
  auto not_base64 = pki::verify_sha256_rsa_base64(*platform, message, "%%%");
  ASSERT_FALSE(not_base64);
  EXPECT_EQ(not_base64.error().code, Errc::kParse);
}

TEST(PkiCertificate, SerialMatchesTheCli) {
  const auto& dir = provider_test::demo_pki();
  auto cert = pki::load_certificate(dir / "platform.pem");
  ASSERT_TRUE(cert) << cert.error().to_string();
  EXPECT_EQ(cert->serial_hex,
            provider_test::trim(provider_test::read_file(dir / "platform.serial")));
  EXPECT_GT(cert->not_after, cert->not_before);
}

TEST(PkiLoad, ErrorsNameTheFile) {
  provider_test::TempDir scratch;
  provider_test::write_file(scratch.path() / "junk.pem", "not a key");
  auto key = pki::load_private_key(scratch.path() / "junk.pem");
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().field, (scratch.path() / "junk.pem").string());
  auto missing = pki::load_public_key(scratch.path() / "missing.pem");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kIo);
  // RSA-1024 is refused.
  provider_test::run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out " +
                     (scratch.path() / "small.key").string() + " 2>/dev/null");
  auto small = pki::load_private_key(scratch.path() / "small.key");
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().code, Errc::kCrypto);
}

TEST(PkiSha1, MatchesTheCli) {
  provider_test::TempDir scratch;
  std::string data = "交易时间,公众账号ID\r\n`1,`2\r\n";
  provider_test::write_file(scratch.path() / "bill.csv", data);
  std::string cli = provider_test::run("openssl dgst -sha1 -r " +
                                       (scratch.path() / "bill.csv").string() + " | cut -d' ' -f1");
  EXPECT_EQ(pki::sha1_hex(data), provider_test::trim(cli));
}

}  // namespace
}  // namespace lanegate
