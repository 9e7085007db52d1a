// Request signing and reply verification against the openssl CLI: every signature the
// verifier sees here was made by `openssl dgst -sha256 -sign`, never by our code.
#include <gtest/gtest.h>

#include <regex>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pki.h"
#include "gateway/provider.h"
#include "gateway/provider_wechatpay.h"
#include "provider_test_support.h"

namespace lanegate::gateway {
namespace {

using provider_test::demo_pki;
using provider_test::openssl_sign;
using provider_test::trim;

TEST(RequestSigning, MessageIsFiveLinesEachEndingInNewline) {
  EXPECT_EQ(request_sign_message("POST", "/v3/vehicle/transactions/parking", "1554208460",
                                 "593BEC0C930BF1AFEB40B4A08C8FB242", "{\"a\":1}"),
            "POST\n/v3/vehicle/transactions/parking\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n"
            "{\"a\":1}\n");
  EXPECT_EQ(request_sign_message("GET", "/v3/certificates", "1", "n", ""),
            "GET\n/v3/certificates\n1\nn\n\n");
}

TEST(RequestSigning, PlateInQueryIsSignedPercentEncoded) {
  EXPECT_EQ(percent_encode("粤B12345"), "%E7%B2%A4B12345");
  EXPECT_EQ(percent_encode("a b&c=d"), "a%20b%26c%3Dd");
  EXPECT_EQ(percent_encode("LG-20261122_0001.x~"), "LG-20261122_0001.x~");
}

TEST(RequestSigning, AuthorizationHeaderVerifiesWithTheCli) {
  const auto& dir = demo_pki();
  provider_test::TempDir scratch;
  auto key = pki::load_private_key(dir / "merchant.key");
  ASSERT_TRUE(key);
  auto header =
      authorization_header(*key, "1900000001", "ABC123", "GET",
                           "/v3/vehicle/parking/services/find?plate_number=%E7%B2%A4B12345",
                           "1790000000", "NONCE42", "");
  ASSERT_TRUE(header);
  std::smatch m;
  std::regex form(
      R"re(^WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="NONCE42",timestamp="1790000000",serial_no="ABC123",signature="([A-Za-z0-9+/=]+)"$)re");
  ASSERT_TRUE(std::regex_match(*header, m, form)) << *header;
  provider_test::run("openssl x509 -in " + (dir / "merchant.pem").string() + " -pubkey -noout > " +
                     (scratch.path() / "m.pub").string());
  const std::string expected =
      "GET\n/v3/vehicle/parking/services/"
      "find?plate_number=%E7%B2%A4B12345\n1790000000\nNONCE42\n\n";
  EXPECT_TRUE(
      provider_test::openssl_verify(scratch.path() / "m.pub", expected, m[1], scratch.path()));
}

std::string g_log;
void capture(log::Level, std::string_view line) { g_log += std::string(line) + "\n"; }

class VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto& dir = demo_pki();
    platform_serial_ = trim(provider_test::read_file(dir / "platform.serial"));
    pubkey_id_ = trim(provider_test::read_file(dir / "pubkey.id"));
    keys_ = std::make_shared<PlatformKeySet>();
    keys_->put(platform_serial_, *pki::load_public_key(dir / "platform.pem"));
    keys_->put(pubkey_id_, *pki::load_public_key(dir / "pubkey.pub.pem"));
    g_log.clear();
    log::set_test_sink(&capture);
  }
  void TearDown() override { log::set_test_sink(nullptr); }

  // A reply as the provider would send it, signed by the CLI.
  SignedMessage signed_by_cli(const std::filesystem::path& key, const std::string& serial,
                              std::int64_t timestamp, const std::string& body) {
    std::string ts = std::to_string(timestamp);
    std::string nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
    std::string sig = openssl_sign(key, ts + "\n" + nonce + "\n" + body + "\n", scratch_.path());
    return SignedMessage{ts, nonce, sig, serial, "WECHATPAY2-SHA256-RSA2048", body};
  }

  FakeClock clock_;
  std::shared_ptr<PlatformKeySet> keys_;
  std::string platform_serial_;
  std::string pubkey_id_;
  provider_test::TempDir scratch_;
  const std::string body_ =
      R"({"out_trade_no":"LG0001","trade_state":"ACCEPTED","amount":{"total":500}})";
};

TEST_F(VerifierTest, AcceptsCertificateAndPublicKeyIdSignaturesSideBySide) {
  ResponseVerifier v(keys_, clock_);
  auto cert_mode =
      signed_by_cli(demo_pki() / "platform.key", platform_serial_, clock_.unix_seconds(), body_);
  auto key_mode =
      signed_by_cli(demo_pki() / "pubkey.key", pubkey_id_, clock_.unix_seconds(), body_);
  EXPECT_TRUE(v.verify(cert_mode, "test"));
  EXPECT_TRUE(v.verify(key_mode, "test"));
  // At the edge of the window: exactly 300 s old is still accepted.
  EXPECT_TRUE(v.verify(signed_by_cli(demo_pki() / "platform.key", platform_serial_,
                                     clock_.unix_seconds() - 300, body_),
                       "test"));
}

TEST_F(VerifierTest, RefusesTamperedBody) {
  ResponseVerifier v(keys_, clock_);
  auto m =
      signed_by_cli(demo_pki() / "platform.key", platform_serial_, clock_.unix_seconds(), body_);
  m.body = R"({"out_trade_no":"LG0001","trade_state":"ACCEPTED","amount":{"total":5000}})";
  auto r = v.verify(m, "test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().check, VerifyCheck::kBadSignature);
}

TEST_F(VerifierTest, RefusesTamperedHeaders) {
  ResponseVerifier v(keys_, clock_);
  auto m =
      signed_by_cli(demo_pki() / "platform.key", platform_serial_, clock_.unix_seconds(), body_);
  auto later = m;
  later.timestamp = std::to_string(clock_.unix_seconds() + 1);
  ASSERT_FALSE(v.verify(later, "test"));
  EXPECT_EQ(v.verify(later, "test").error().check, VerifyCheck::kBadSignature);
  auto other_nonce = m;
  other_nonce.nonce[0] = other_nonce.nonce[0] == 'A' ? 'B' : 'A';
  EXPECT_EQ(v.verify(other_nonce, "test").error().check, VerifyCheck::kBadSignature);
  // The serial of the other (valid) key: the signature does not match that key.
  auto swapped = m;
  swapped.serial = pubkey_id_;
  EXPECT_EQ(v.verify(swapped, "test").error().check, VerifyCheck::kBadSignature);
  auto wrong_type = m;
  wrong_type.signature_type = "WECHATPAY2-SM2-WITH-SM3";
  EXPECT_EQ(v.verify(wrong_type, "test").error().check, VerifyCheck::kSignatureType);
  auto missing = m;
  missing.nonce.clear();
  EXPECT_EQ(v.verify(missing, "test").error().check, VerifyCheck::kMissingHeader);
}

TEST_F(VerifierTest, RefusesTheMerchantsOwnKey) {
  // A known pain point: verifying with the merchant's certificate. A reply signed with
  // the merchant key under the platform serial must fail.
  ResponseVerifier v(keys_, clock_);
  auto m =
      signed_by_cli(demo_pki() / "merchant.key", platform_serial_, clock_.unix_seconds(), body_);
  auto r = v.verify(m, "test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().check, VerifyCheck::kBadSignature);
}

TEST_F(VerifierTest, RefusesStaleAndFutureTimestampsAndLogsKeyIdAndSkew) {
  ResponseVerifier v(keys_, clock_);
  auto stale = signed_by_cli(demo_pki() / "platform.key", platform_serial_,
                             clock_.unix_seconds() - 301, body_);
  auto r = v.verify(stale, "test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().check, VerifyCheck::kSkew);
  EXPECT_EQ(r.error().skew_s, 301);
  EXPECT_NE(g_log.find("check=skew"), std::string::npos) << g_log;
  EXPECT_NE(g_log.find("key_id=" + platform_serial_), std::string::npos) << g_log;
  EXPECT_NE(g_log.find("skew_s=301"), std::string::npos) << g_log;
  auto future = signed_by_cli(demo_pki() / "platform.key", platform_serial_,
                              clock_.unix_seconds() + 400, body_);
  EXPECT_EQ(v.verify(future, "test").error().check, VerifyCheck::kSkew);
  auto garbage = stale;
  garbage.timestamp = "17x";
  EXPECT_EQ(v.verify(garbage, "test").error().check, VerifyCheck::kBadTimestamp);
}

TEST_F(VerifierTest, RefusesSignTestProbes) {
  ResponseVerifier v(keys_, clock_);
  auto m =
      signed_by_cli(demo_pki() / "platform.key", platform_serial_, clock_.unix_seconds(), body_);
  m.signature = "WECHATPAY/SIGNTEST/" + m.signature;
  auto before = metrics::Registry::global().value("lanegate_provider_verify_failures_total",
                                                  {{"check", "signtest_probe"}});
  auto r = v.verify(m, "test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().check, VerifyCheck::kSignTestProbe);
  EXPECT_EQ(metrics::Registry::global().value("lanegate_provider_verify_failures_total",
                                              {{"check", "signtest_probe"}}),
            std::max<std::int64_t>(before, 0) + 1);
}

TEST_F(VerifierTest, RefusesUnknownSerialNamingIt) {
  ResponseVerifier v(keys_, clock_);
  auto m = signed_by_cli(demo_pki() / "platform.key", "7132D72A03E93CDDF8C03BBD1F37EEDF204D5230",
                         clock_.unix_seconds(), body_);
  auto r = v.verify(m, "test");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().check, VerifyCheck::kUnknownKey);
  EXPECT_EQ(r.error().key_id, "7132D72A03E93CDDF8C03BBD1F37EEDF204D5230");
  EXPECT_NE(g_log.find("key_id=7132D72A03E93CDDF8C03BBD1F37EEDF204D5230"), std::string::npos);
}

TEST(Classification, FollowsTheSpecErrorTable) {
  struct Row {
    int status;
    const char* code;
    Outcome charge;
    Outcome read;
  };
  const Row rows[] = {
      {400, "PARAM_ERROR", Outcome::kPark, Outcome::kPark},
      {400, "INVALID_REQUEST", Outcome::kPark, Outcome::kPark},
      {401, "SIGN_ERROR", Outcome::kRetryLater, Outcome::kRetryLater},
      {403, "NO_AUTH", Outcome::kPark, Outcome::kPark},
      {404, "ORDER_NOT_EXIST", Outcome::kNotFound, Outcome::kNotFound},
      {429, "RATELIMIT_EXCEEDED", Outcome::kRetryLater, Outcome::kRetryLater},
      {500, "SYSTEM_ERROR", Outcome::kQueryFirst, Outcome::kRetryLater},
      {502, "SERVICE_UNAVAILABLE", Outcome::kQueryFirst, Outcome::kRetryLater},
      {503, "SERVICE_UNAVAILABLE", Outcome::kQueryFirst, Outcome::kRetryLater},
      {504, "", Outcome::kQueryFirst, Outcome::kRetryLater},
      {418, "SOMETHING_NEW", Outcome::kPark, Outcome::kPark},
      {200, "", Outcome::kOk, Outcome::kOk},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(classify_reply(CallKind::kCharge, r.status, r.code), r.charge) << r.status << r.code;
    EXPECT_EQ(classify_reply(CallKind::kRead, r.status, r.code), r.read) << r.status << r.code;
  }
  EXPECT_EQ(outcome_name(Outcome::kQueryFirst), "query_first");
}

TEST(Classification, AcceptsFailAsPayFail) {
  EXPECT_EQ(*parse_trade_state("FAIL"), TradeState::kPayFail);
  EXPECT_EQ(*parse_trade_state("PAY_FAIL"), TradeState::kPayFail);
  EXPECT_EQ(*parse_trade_state("ACCEPTED"), TradeState::kAccepted);
  EXPECT_FALSE(parse_trade_state("PAYING"));
}

}  // namespace
}  // namespace lanegate::gateway
