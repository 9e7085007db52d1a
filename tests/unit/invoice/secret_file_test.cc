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

TEST(PlatformSigning, HmacOverCanonicalString) {
  const std::string canonical = canonical_request_string("k", "{\"a\":1}", "m", "n", "s", "1", "u");
  EXPECT_EQ(canonical, "appKey=k&content={\"a\":1}&method=m&nonce=n&senid=s&timestamp=1&userTax=u");
  // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
  HmacSha256Signer signer("Jefe");
  auto sig = signer.sign("what do ya want for nothing?");
  ASSERT_TRUE(sig);
  EXPECT_EQ(*sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
  EXPECT_FALSE(HmacSha256Signer("").sign("x"));
}

TEST(PlatformStatus, CodesMap) {
  EXPECT_EQ(*platform_status_from_code("2"), PlatformStatus::kIssued);
  EXPECT_EQ(*platform_status_from_code("20"), PlatformStatus::kInProgress);
  EXPECT_EQ(*platform_status_from_code("21"), PlatformStatus::kSigning);
  EXPECT_EQ(*platform_status_from_code("22"), PlatformStatus::kFailed);
  EXPECT_EQ(*platform_status_from_code("24"), PlatformStatus::kSealFailed);
  EXPECT_FALSE(platform_status_from_code("3"));
  EXPECT_TRUE(is_final(PlatformStatus::kSealFailed));
  EXPECT_FALSE(is_final(PlatformStatus::kSigning));
}

}  // namespace
}  // namespace lanegate::invoice
