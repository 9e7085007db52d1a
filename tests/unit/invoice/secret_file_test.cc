// Platform secrets are read only from files nobody else can read.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "invoice/platform.h"
#include "test_db.h"

namespace lanegate::invoice {
namespace {

TEST(SecretFile, RefusesGroupReadableAndTrims) {
  testing::TempDir dir;
  const auto path = dir.path() / "app_secret";
  {
    std::ofstream(path) << "s3cret\n";
  }
  ::chmod(path.c_str(), 0644);
  auto open = read_secret_file(path);
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().code, Errc::kPermission);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  auto ok = read_secret_file(path);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(*ok, "s3cret");
  EXPECT_FALSE(read_secret_file(dir.path() / "missing"));
}

TEST(SecretFile, MakePlatformNeedsBothFiles) {
  testing::TempDir dir;
  config::InvoicingSection s;
  s.app_secret_file = dir.path() / "secret";
  s.access_token_file = dir.path() / "token";
  {
    std::ofstream(s.app_secret_file) << "x";
  }
  ::chmod(s.app_secret_file.c_str(), 0600);
  FakeClock clock;
  auto p = make_platform(s, clock);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().field, s.access_token_file.string());
  {
    std::ofstream(s.access_token_file) << "t";
  }
  ::chmod(s.access_token_file.c_str(), 0600);
  EXPECT_TRUE(make_platform(s, clock));
}

// The sign string and the signature as specs/e-invoice.md "Invoicing platform API" writes
// them: Base64(HMAC-SHA1(appSecret, "a=services&l=v1&p=open&k=..&i=..&n=..&t=..&f=..")).
TEST(PlatformSigning, HmacSha1OverTheSpecSignString) {
  EXPECT_EQ(nuonuo_sign_string("key1", "0123456789abcdef0123456789abcdef", "12345678",
                               "1795000000", "{\"a\":1}"),
            "a=services&l=v1&p=open&k=key1&i=0123456789abcdef0123456789abcdef&n=12345678"
            "&t=1795000000&f={\"a\":1}");
  // RFC 2202 test case 2: HMAC-SHA1("Jefe", "what do ya want for nothing?").
  NuonuoSigner signer("Jefe");
  auto sig = signer.sign("what do ya want for nothing?");
  ASSERT_TRUE(sig);
  EXPECT_EQ(*sig, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
  EXPECT_FALSE(NuonuoSigner("").sign("x"));
}

TEST(PlatformSigning, DuplicateRefusalsAreRecognisedByCodeOrText) {
  EXPECT_TRUE(is_duplicate_refusal("E9106", ""));
  EXPECT_TRUE(is_duplicate_refusal("E9999", "订单编号重复"));
  EXPECT_TRUE(is_duplicate_refusal("E1234", "Duplicate orderNo"));
  EXPECT_FALSE(is_duplicate_refusal("E9613", "当日重试次数超限"));
  EXPECT_FALSE(is_duplicate_refusal("E0000", "成功"));
}

TEST(PlatformStatus, CodesMap) {
  EXPECT_EQ(*platform_status_from_code("2"), PlatformStatus::kIssued);
  EXPECT_EQ(*platform_status_from_code("20"), PlatformStatus::kInProgress);
  EXPECT_EQ(*platform_status_from_code("21"), PlatformStatus::kSigning);
  EXPECT_EQ(*platform_status_from_code("22"), PlatformStatus::kFailed);
  EXPECT_EQ(*platform_status_from_code("24"), PlatformStatus::kSealFailed);
  EXPECT_EQ(*platform_status_from_code("3"), PlatformStatus::kVoided);
  EXPECT_EQ(*platform_status_from_code("31"), PlatformStatus::kVoiding);
  auto unknown = platform_status_from_code("99");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Errc::kProtocol);
  EXPECT_EQ(unknown.error().field, "status");
  EXPECT_TRUE(is_final(PlatformStatus::kSealFailed));
  EXPECT_FALSE(is_final(PlatformStatus::kSigning));
}

}  // namespace
}  // namespace lanegate::invoice
