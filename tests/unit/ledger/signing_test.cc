// Ed25519 device key: RFC 8032 known answer, key files with mode 0600, refusal of a
// key file others can read, public key forms and fingerprint.
#include "core/signing.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace lanegate::signing {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "signing-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) {
      std::abort();
    }
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// RFC 8032 section 7.1, TEST 1: the secret key wrapped in PKCS#8 PEM.
constexpr const char* kRfc8032Test1Pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
constexpr const char* kRfc8032Test1Public =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr const char* kRfc8032Test1Signature =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b";

void write_file(const std::filesystem::path& p, const std::string& text, mode_t mode) {
  std::ofstream(p) << text;
  ::chmod(p.c_str(), mode);
}

mode_t file_mode(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 07777;
}

TEST(Signing, Rfc8032KnownAnswer) {
  TempDir dir;
  const auto path = dir.path() / "key.pem";
  write_file(path, kRfc8032Test1Pem, 0600);
  auto key = KeyPair::load_file(path);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(key->public_key().hex(), kRfc8032Test1Public);
  auto sig = key->sign(std::string_view());
  ASSERT_TRUE(sig);
  EXPECT_EQ(crypto::hex_encode(*sig), kRfc8032Test1Signature);
  EXPECT_TRUE(key->public_key().verify(std::string_view(), *sig));
}

TEST(Signing, SaveWritesMode0600AndLoadsBack) {
  TempDir dir;
  const auto path = dir.path() / "device-key.pem";
  auto key = KeyPair::generate();
  ASSERT_TRUE(key);
  ASSERT_TRUE(key->save_file(path));
  EXPECT_EQ(file_mode(path), 0600u);
  EXPECT_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  auto back = KeyPair::load_file(path);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->public_key().hex(), key->public_key().hex());
}

TEST(Signing, RefusesAKeyFileOthersCanRead) {
  TempDir dir;
  const auto path = dir.path() / "key.pem";
  write_file(path, kRfc8032Test1Pem, 0640);
  auto key = KeyPair::load_file(path);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, Errc::kPermission);
  EXPECT_NE(key.error().message.find("0640"), std::string::npos) << key.error().message;
  EXPECT_NE(key.error().message.find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0604);
  EXPECT_FALSE(KeyPair::load_file(path));
  ::chmod(path.c_str(), 0600);
  EXPECT_TRUE(KeyPair::load_file(path));
}

TEST(Signing, RefusesMissingAndGarbageKeys) {
  TempDir dir;
  auto missing = KeyPair::load_file(dir.path() / "nope.pem");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  write_file(dir.path() / "junk.pem", "not a key\n", 0600);
  auto junk = KeyPair::load_file(dir.path() / "junk.pem");
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code, Errc::kCrypto);
}

TEST(Signing, PublicKeyFormsAgree) {
  auto key = KeyPair::generate();
  ASSERT_TRUE(key);
  const PublicKey pub = key->public_key();
  for (const std::string& form : {pub.hex(), pub.base64(), pub.pem(), " " + pub.hex() + "\n"}) {
    auto parsed = PublicKey::parse(form);
    ASSERT_TRUE(parsed) << form << ": " << parsed.error().message;
    EXPECT_EQ(parsed->hex(), pub.hex());
  }
  EXPECT_FALSE(PublicKey::parse("abcd"));
  EXPECT_FALSE(PublicKey::parse(std::string(64, 'z')));
}

TEST(Signing, FingerprintIsSha256OfRawKey) {
  auto pub = PublicKey::parse(kRfc8032Test1Public);
  ASSERT_TRUE(pub);
  const auto raw = pub->raw();
  EXPECT_EQ(pub->fingerprint(),
            crypto::hex_encode(crypto::sha256(std::span<const std::uint8_t>(raw))));
  EXPECT_EQ(group_fingerprint("0123456789abcdef01"), "0123 4567 89ab cdef 01");
}

TEST(Signing, VerifyRejectsOtherKeyAndAlteredMessage) {
  auto a = KeyPair::generate();
  auto b = KeyPair::generate();
  ASSERT_TRUE(a && b);
  auto sig = a->sign(std::string_view("seal"));
  ASSERT_TRUE(sig);
  EXPECT_TRUE(a->public_key().verify(std::string_view("seal"), *sig));
  EXPECT_FALSE(b->public_key().verify(std::string_view("seal"), *sig));
  EXPECT_FALSE(a->public_key().verify(std::string_view("seaL"), *sig));
  crypto::Bytes short_sig(sig->begin(), sig->begin() + 10);
  EXPECT_FALSE(a->public_key().verify(std::string_view("seal"), short_sig));
}

}  // namespace
}  // namespace lanegate::signing
