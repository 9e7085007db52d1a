// Forged and replayed provider notifications against lanegated's real notification path
// (POST /notify/wechatpay over TLS): a replay has no second effect, a notification
// re-signed with another RSA key, a stale one and one with tampered ciphertext are
// refused with the right status, each is counted, and the stored money is unchanged.

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <ctime>
#include <string>

#include "core/crypto.h"
#include "core/pki.h"
#include "core/signing.h"
#include "audit/audit.h"
#include "hostile_site.h"

namespace lanegate::hostile {
namespace {

namespace json = boost::json;

struct Notification {
  std::map<std::string, std::string> headers;
  std::string body;
};

class NotifyHostileTest : public HostileTest {
 protected:
  void SetUp() override {
    HostileTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(site().ensure_settled_charge()) << site().stderr_text();
    out_trade_no_ = site().first_out_trade_no();
    ASSERT_FALSE(out_trade_no_.empty());
    auto key = pki::load_private_key(site().pki() / "platform.key");
    ASSERT_TRUE(key) << key.error().to_string();
    platform_key_ = std::move(*key);
    serial_ = trimmed(read_text(site().pki() / "platform.serial"));
    apiv3_ = read_text(site().pki() / "apiv3.key");
  }

  // A TRANSACTION.* notification for `out_trade_no`, encrypted with `apiv3` and signed
  // with `key` at `timestamp`, as the provider sends it.
  Notification make(const std::string& event_id, const std::string& out_trade_no,
                    const std::string& trade_state, std::int64_t total_fen,
                    const pki::PrivateKey& key, std::int64_t timestamp, bool tamper = false) {
    json::object resource{
        {"mchid", "1900000001"},
        {"appid", "wxhostile"},
        {"out_trade_no", out_trade_no},
        {"transaction_id", "4200000000" + event_id.substr(event_id.size() - 6)},
        {"trade_scene", "PARKING"},
        {"trade_state", trade_state},
        {"trade_state_description", "hostile"},
        {"success_time", "2026-11-22T08:00:00+08:00"},
        {"payer", json::object{{"openid", "oHOSTILE1"}}},
        {"amount", json::object{{"total", total_fen}, {"payer_total", total_fen}}}};
    const std::string nonce12 = "hostile12345";
    auto sealed = pki::aes256gcm_encrypt(apiv3_, nonce12, "transaction", json::serialize(resource));
    EXPECT_TRUE(sealed);
    std::string ct = sealed.value_or("");
    if (tamper) ct[ct.size() / 2] = static_cast<char>(ct[ct.size() / 2] ^ 0x01);
    json::object env{
        {"id", event_id},
        {"create_time", "2026-11-22T08:00:00+08:00"},
        {"resource_type", "encrypt-resource"},
        {"event_type", trade_state == "SUCCESS" ? "TRANSACTION.SUCCESS" : "TRANSACTION.PAY_FAIL"},
        {"summary", "hostile"},
        {"resource", json::object{{"original_type", "transaction"},
                                  {"algorithm", "AEAD_AES_256_GCM"},
                                  {"ciphertext", crypto::base64_encode(ct)},
                                  {"associated_data", "transaction"},
                                  {"nonce", nonce12}}}};
    Notification n;
    n.body = json::serialize(env);
    const std::string ts = std::to_string(timestamp);
    const std::string nonce = "n" + event_id;
    auto sig = pki::sign_sha256_rsa_base64(key, ts + "\n" + nonce + "\n" + n.body + "\n");
    EXPECT_TRUE(sig);
    n.headers = {{"Wechatpay-Timestamp", ts},
                 {"Wechatpay-Nonce", nonce},
                 {"Wechatpay-Signature", sig.value_or("")},
                 {"Wechatpay-Serial", serial_},
                 {"Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048"},
                 {"Content-Type", "application/json"}};
    return n;
  }

  HttpReply deliver(const Notification& n) {
    return site().request("POST", "/notify/wechatpay", n.headers, n.body);
  }

  double check(std::string_view c) {
    return site().metric("lanegate_provider_verify_failures_total",
                         "check=\"" + std::string(c) + "\"");
  }

  double result(std::string_view r) {
    return site().metric("lanegate_provider_notifications_total",
                         "result=\"" + std::string(r) + "\"");
  }

  static std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

  std::string out_trade_no_;
  pki::PrivateKey platform_key_;
  std::string serial_;
  std::string apiv3_;
};

TEST_F(NotifyHostileTest, AReplayedNotificationHasNoSecondEffect) {
  const std::string money = site().money_snapshot();
  const double accepted = result("accepted");
  const double duplicate = result("duplicate_event");
  // A genuine notification about a charge this gateway never made: acknowledged, stored,
  // changes no money.
  const Notification n =
      make("EVT-HOSTILE-000001", "HOSTILE-UNKNOWN-1", "SUCCESS", 500, platform_key_, now());
  EXPECT_EQ(deliver(n).status, 204);
  EXPECT_EQ(result("accepted"), accepted + 1);
  // The identical bytes again, and a third time: acknowledged (or the provider would
  // keep retrying) but recognised by event id.
  EXPECT_EQ(deliver(n).status, 204);
  EXPECT_EQ(deliver(n).status, 204);
  EXPECT_EQ(result("accepted"), accepted + 1);
  EXPECT_EQ(result("duplicate_event"), duplicate + 2);
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(NotifyHostileTest, ANotificationSignedWithAnotherKeyIsRefused) {
  const std::string money = site().money_snapshot();
  const double refused = result("refused_signature");
  const double bad_signature = check("bad_signature");
  const double unknown_key = check("unknown_key");
  const double probe_check = check("signtest_probe");
  const double missing = check("missing_header");
  // The merchant key is a valid RSA-2048 key, just not the platform's.
  auto other = pki::load_private_key(site().pki() / "merchant.key");
  ASSERT_TRUE(other);
  const Notification forged =
      make("EVT-HOSTILE-000002", out_trade_no_, "PAY_FAIL", 1, *other, now());
  HttpReply r = deliver(forged);
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(r.body.find("FAIL"), std::string::npos) << r.body;
  // Signed correctly but naming a key id the gateway does not know.
  Notification unknown_serial =
      make("EVT-HOSTILE-000003", out_trade_no_, "PAY_FAIL", 1, platform_key_, now());
  unknown_serial.headers["Wechatpay-Serial"] = "7A7A7A7A7A7A";
  EXPECT_EQ(deliver(unknown_serial).status, 401);
  // A genuine notification whose body was altered after signing.
  Notification altered =
      make("EVT-HOSTILE-000004", out_trade_no_, "SUCCESS", 200, platform_key_, now());
  altered.body.replace(altered.body.find("EVT-HOSTILE-000004"), 18, "EVT-HOSTILE-000005");
  EXPECT_EQ(deliver(altered).status, 401);
  // The provider's SIGNTEST probe signature is never accepted as real.
  Notification probe =
      make("EVT-HOSTILE-000006", out_trade_no_, "PAY_FAIL", 1, platform_key_, now());
  probe.headers["Wechatpay-Signature"] =
      "WECHATPAY/SIGNTEST/" + probe.headers["Wechatpay-Signature"];
  EXPECT_EQ(deliver(probe).status, 401);
  // No headers at all.
  EXPECT_EQ(site().request("POST", "/notify/wechatpay", {}, forged.body).status, 401);
  EXPECT_EQ(result("refused_signature"), refused + 5);
  EXPECT_EQ(check("bad_signature"), bad_signature + 2);
  EXPECT_EQ(check("unknown_key"), unknown_key + 1);
  EXPECT_EQ(check("signtest_probe"), probe_check + 1);
  EXPECT_EQ(check("missing_header"), missing + 1);
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(NotifyHostileTest, AStaleOrFutureNotificationIsRefused) {
  const std::string money = site().money_snapshot();
  const double refused = result("refused_signature");
  const double skew = check("skew");
  HttpReply r =
      deliver(make("EVT-HOSTILE-000010", out_trade_no_, "PAY_FAIL", 1, platform_key_, now() - 301));
  EXPECT_EQ(r.status, 401) << r.body;
  r = deliver(make("EVT-HOSTILE-000011", out_trade_no_, "PAY_FAIL", 1, platform_key_, now() + 400));
  EXPECT_EQ(r.status, 401) << r.body;
  r = deliver(
      make("EVT-HOSTILE-000012", out_trade_no_, "PAY_FAIL", 1, platform_key_, now() - 86400 * 365));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(result("refused_signature"), refused + 3);
  EXPECT_EQ(check("skew"), skew + 3);
  EXPECT_EQ(site().money_snapshot(), money);
}

TEST_F(NotifyHostileTest, TamperedCiphertextFailsTheGcmTagAndIsRefused) {
  const std::string money = site().money_snapshot();
  const double malformed = result("refused_malformed");
  // Signed with the right key (so only the AEAD layer can catch it).
  HttpReply r =
      deliver(make("EVT-HOSTILE-000020", out_trade_no_, "PAY_FAIL", 1, platform_key_, now(), true));
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("decrypt"), std::string::npos) << r.body;
  EXPECT_EQ(result("refused_malformed"), malformed + 1);
  // The refused event id was not stored: the genuine event under that id still applies
  // later (here: about a charge the gateway never made, so it changes no money).
  const double accepted = result("accepted");
  EXPECT_EQ(
      deliver(make("EVT-HOSTILE-000020", "HOSTILE-UNKNOWN-2", "SUCCESS", 100, platform_key_, now()))
          .status,
      204);
  EXPECT_EQ(result("accepted"), accepted + 1);
  EXPECT_EQ(site().money_snapshot(), money);
}

// With the platform key itself (a compromised key, or a provider bug): a validly signed
// PAY_FAIL for a charge already settled as SUCCESS must not move it backwards. The
// gateway refuses to apply it (the provider is asked to retry, nothing is dropped) and the
// money stays as settled.
TEST_F(NotifyHostileTest, ASignedNotificationCannotMoveASettledChargeBackwards) {
  const std::string money = site().money_snapshot();
  ASSERT_NE(money.find("\"SUCCESS\""), std::string::npos) << money;
  const HttpReply r =
      deliver(make("EVT-HOSTILE-000030", out_trade_no_, "PAY_FAIL", 200, platform_key_, now()));
  EXPECT_NE(r.status, 401) << r.body;  // the signature is genuine
  EXPECT_EQ(site().money_snapshot(), money) << "reply " << r.status << " " << r.body;
}

// After every attack above: the ledger of the day exports (the operator's CLI) with a
// valid seal and verifies offline against the device key, as an authority checks it.
class LedgerAfterAttacksTest : public NotifyHostileTest {
 protected:
  // Exports today's package with `lanegate audit export`; empty path on failure.
  fs::path export_today() {
    const char* bin_dir = std::getenv("LANEGATE_BIN_DIR");
    cli_ = std::string(bin_dir != nullptr ? bin_dir : LANEGATE_BINARY_DIR) + "/lanegate";
    const std::time_t local = std::time(nullptr) + 8 * 3600;  // the site's utc_offset_minutes
    std::tm tm{};
    gmtime_r(&local, &tm);
    char date[16];
    std::strftime(date, sizeof date, "%Y-%m-%d", &tm);
    const fs::path pkg = site().dir() / ("package-" + std::to_string(++exports_) + "-" + date);
    out_ = site().dir() / "audit.out";
    const std::string exp = cli_ + " --config " + site().config_file().string() +
                            " audit export --date " + date + " --out " + pkg.string() + " >" +
                            out_.string() + " 2>&1";
    if (std::system(exp.c_str()) != 0) {
      ADD_FAILURE() << read_text(out_);
      return {};
    }
    return pkg;
  }
  std::string cli_;
  fs::path out_;
  static inline int exports_ = 0;
};

TEST_F(LedgerAfterAttacksTest, TheLedgerStillVerifiesAfterTheAttacks) {
  const fs::path pkg = export_today();
  ASSERT_FALSE(pkg.empty());
  auto key = signing::PublicKey::load_file(site().dir() / "state" / "device-key.pub");
  ASSERT_TRUE(key) << key.error().to_string();
  const auto report = audit::verify_package(pkg, *key);
  EXPECT_TRUE(report.ok()) << report.to_text();
  EXPECT_GT(report.records_checked, 0);
  // Every refused notification left no record: the day's records name the charge only in
  // its genuine states.
  const std::string records = read_text(pkg / "records.jsonl");
  EXPECT_EQ(records.find("PAY_FAIL"), std::string::npos) << records;
}

// KNOWN BUG (reported): `lanegate audit verify` opens an in-memory SQLite database,
// which cannot switch to WAL, so Database::open fails and the command exits 1 without a
// word. Enable once gateway/main/lanegate.cc (or core/src/sqlite.cc) is fixed.
TEST_F(LedgerAfterAttacksTest, TheCliVerifiesThePackageAsAnAuthorityWould) {
  const fs::path pkg = export_today();
  ASSERT_FALSE(pkg.empty());
  const std::string ver = cli_ + " audit verify " + pkg.string() + " --pubkey " +
                          (site().dir() / "state" / "device-key.pub").string() + " >" +
                          out_.string() + " 2>&1";
  EXPECT_EQ(std::system(ver.c_str()), 0) << read_text(out_);
}

}  // namespace
}  // namespace lanegate::hostile
