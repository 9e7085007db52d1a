// `lanegate keys` and `lanegate audit` as an operator and an authority use them: exit
// codes, what is printed, and the files left in the state directory.
#include <sys/stat.h>

#include <sstream>

#include "audit_fixture.h"
#include "gateway/audit_cli.h"
#include "gateway/audit_files.h"

namespace lanegate::gateway::audit::testing {
namespace {

constexpr std::string_view kDay = "2026-11-22";

class CliTest : public AuditTest {
 protected:
  int audit(std::vector<std::string> args, FetchBill fetch = {}) {
    out_.str("");
    err_.str("");
    return audit_command(*db_, dir_.path(), 480, args, std::move(fetch), out_, err_, clock_);
  }
  int keys(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    return keys_command(dir_.path(), args, out_, err_);
  }
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(CliTest, KeysShowPrintsPublicKeyAndFingerprint) {
  ASSERT_EQ(keys({"show"}), 0) << err_.str();
  const auto pub = key_->public_key();
  EXPECT_NE(out_.str().find("public key:  " + pub.hex()), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find(signing::group_fingerprint(pub.fingerprint())), std::string::npos);
  ASSERT_EQ(keys({"show", "--pem"}), 0);
  EXPECT_TRUE(out_.str().starts_with("-----BEGIN PUBLIC KEY-----")) << out_.str();
  auto from_pem = signing::PublicKey::parse(out_.str());
  ASSERT_TRUE(from_pem);
  EXPECT_EQ(from_pem->hex(), pub.hex());
  EXPECT_EQ(keys({"rotate"}), 2);
  EXPECT_EQ(keys({}), 2);
}

TEST_F(CliTest, KeysShowGeneratesNothing) {
  TempDir empty;
  std::ostringstream out, err;
  std::vector<std::string> args{"show"};
  EXPECT_EQ(keys_command(empty.path(), args, out, err), 1);
  EXPECT_NE(err.str().find("lanegated generates it"), std::string::npos) << err.str();
  EXPECT_FALSE(std::filesystem::exists(empty.path() / "device-key.pem"));
}

TEST_F(CliTest, KeysShowWarnsAboutAnUnsafeKeyFile) {
  ::chmod((dir_.path() / "device-key.pem").c_str(), 0644);
  EXPECT_EQ(keys({"show"}), 0);  // the public half comes from device-key.pub
  EXPECT_NE(err_.str().find("chmod 600"), std::string::npos) << err_.str();
  EXPECT_NE(out_.str().find(key_->public_key().hex()), std::string::npos);
}

TEST_F(CliTest, ExportThenVerifyWithTheRegisteredKey) {
  fill_day(kDay, 25);
  ASSERT_EQ(audit({"export", "--date", std::string(kDay)}), 0) << err_.str();
  const auto pkg = dir_.path() / "packages" / "2026-11-22-r1";
  EXPECT_TRUE(std::filesystem::exists(pkg / "seal.json"));
  EXPECT_NE(out_.str().find("25 records"), std::string::npos) << out_.str();
  // Exporting the unchanged day again reuses the package.
  ASSERT_EQ(audit({"export", "--date", std::string(kDay)}), 0);
  EXPECT_NE(out_.str().find("already exported"), std::string::npos);

  // The authority verifies with the hex key it registered, or with a key file.
  ASSERT_EQ(audit({"verify", pkg.string(), "--pubkey", key_->public_key().hex()}), 0) << err_.str();
  EXPECT_NE(out_.str().find("OK"), std::string::npos);
  ASSERT_EQ(audit({"verify", pkg.string(), "--pubkey", (dir_.path() / "device-key.pub").string()}),
            0)
      << err_.str();

  // A tampered package fails with exit 1 and names the first bad record.
  auto lines = read_lines(pkg / "records.jsonl");
  lines.erase(lines.begin() + 9);
  write_lines(pkg / "records.jsonl", lines);
  EXPECT_EQ(audit({"verify", pkg.string(), "--pubkey", key_->public_key().hex()}), 1);
  EXPECT_NE(err_.str().find("first bad record: seq 10"), std::string::npos) << err_.str();

  // Another key: refused.
  auto other = signing::KeyPair::generate();
  ASSERT_TRUE(other);
  ASSERT_EQ(
      audit({"export", "--date", std::string(kDay), "--out", (dir_.path() / "copy").string()}), 0);
  EXPECT_EQ(
      audit({"verify", (dir_.path() / "copy").string(), "--pubkey", other->public_key().hex()}), 1);
  EXPECT_NE(err_.str().find("seal_signature"), std::string::npos);
}

TEST_F(CliTest, SealOnDemand) {
  fill_day(kDay, 3);
  ASSERT_EQ(audit({"seal", "--date", std::string(kDay)}), 0) << err_.str();
  EXPECT_NE(out_.str().find("revision 1: 3 records, seq 1..3"), std::string::npos) << out_.str();
  auto latest = latest_seal(*db_, kDay);
  ASSERT_TRUE(latest && latest->has_value());
}

TEST_F(CliTest, ReconcileFromTheProviderWritesReports) {
  append_one(
      event(ledger::Kind::kChargeSettled, "T1", 500, at("2026-11-22T09:00:00+08:00"), "SUCCESS"));
  const std::string bill =
      "交易时间,公众账号ID,商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
      "付款银行,货币种类,应结订单总金额(元),退款金额(元)\n"
      "`2026-11-22 09:00:00,`wx1,`19,`d,`42,`T1,`o,`JSAPI,`SUCCESS,`CMC,`CNY,`5.00,`0.00\n"
      "总交易单数,应结订单总金额,退款总金额\n`1,`5.00,`0.00\n";
  std::string asked;
  auto fetch = [&](std::string date) -> Result<std::string> {
    asked = date;
    return bill;
  };
  ASSERT_EQ(audit({"reconcile", "--date", std::string(kDay)}, fetch), 0) << err_.str();
  EXPECT_EQ(asked, kDay);
  EXPECT_NE(out_.str().find("Every trade matched"), std::string::npos) << out_.str();
  const auto reports = dir_.path() / "reports";
  EXPECT_EQ(read_text(reports / "tradebill-2026-11-22.csv"), bill);
  EXPECT_TRUE(std::filesystem::exists(reports / "reconcile-2026-11-22.txt"));
  EXPECT_TRUE(std::filesystem::exists(reports / "reconcile-2026-11-22.json"));

  // A planted difference: exit 1; --json prints the machine-readable report.
  append_one(
      event(ledger::Kind::kChargeSettled, "T2", 700, at("2026-11-22T10:00:00+08:00"), "SUCCESS"));
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay), "--json"}, fetch), 1);
  EXPECT_NE(out_.str().find("\"missing_at_provider\":1"), std::string::npos) << out_.str();

  // From a file, without a provider client.
  write_text(dir_.path() / "bill.csv", bill);
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay), "--bill",
                   (dir_.path() / "bill.csv").string()}),
            1);
  EXPECT_NE(out_.str().find("missing_at_provider T2"), std::string::npos);
}

TEST_F(CliTest, ReconcileReportsDownloadAndParseFailures) {
  auto down = [](std::string) -> Result<std::string> {
    return fail(Errc::kUnavailable, "uplink down");
  };
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay)}, down), 1);
  EXPECT_NE(err_.str().find("uplink down"), std::string::npos);
  auto garbage = [](std::string) -> Result<std::string> { return std::string("<html>"); };
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay)}, garbage), 1);
  EXPECT_NE(err_.str().find("商户订单号"), std::string::npos) << err_.str();
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay)}), 2);  // no client, no --bill
}

TEST_F(CliTest, UsageErrors) {
  EXPECT_EQ(audit({}), 2);
  EXPECT_EQ(audit({"export"}), 2);
  EXPECT_NE(err_.str().find("--date"), std::string::npos);
  EXPECT_EQ(audit({"export", "--date", "2026-02-30"}), 2);
  EXPECT_EQ(audit({"export", "--date"}), 2);
  EXPECT_EQ(audit({"verify", "/nonexistent"}), 2);
  EXPECT_EQ(audit({"verify", "/nonexistent", "--pubkey", "zz"}), 2);
  EXPECT_EQ(audit({"frobnicate"}), 2);
  EXPECT_EQ(audit({"seal", "--date", "2026-11-22", "--bogus"}), 2);
}

TEST_F(CliTest, ListAndResolveArtifactsForTheAuditorApi) {
  fill_day(kDay, 2);
  ASSERT_EQ(audit({"export", "--date", std::string(kDay)}), 0);
  write_text(dir_.path() / "bill.csv", "交易状态,商户订单号,应结订单总金额(元)\n");
  audit({"reconcile", "--date", std::string(kDay), "--bill", (dir_.path() / "bill.csv").string()});
  ASSERT_EQ(audit({"list"}), 0);
  EXPECT_NE(out_.str().find("package  2026-11-22-r1"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("report  reconcile-2026-11-22.json"), std::string::npos);

  auto ok = resolve_artifact(dir_.path(), "package", "2026-11-22-r1", "seal.json");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, dir_.path() / "packages" / "2026-11-22-r1" / "seal.json");
  EXPECT_TRUE(resolve_artifact(dir_.path(), "report", "reconcile-2026-11-22.txt", ""));
  // Nothing outside the two folders is reachable.
  auto up = resolve_artifact(dir_.path(), "package", "..", "seal.json");
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().field, "name");
  EXPECT_FALSE(resolve_artifact(dir_.path(), "package", "2026-11-22-r1", "../../device-key.pem"));
  EXPECT_FALSE(resolve_artifact(dir_.path(), "report", "../device-key.pem", ""));
  EXPECT_FALSE(resolve_artifact(dir_.path(), "report", "a/b", ""));
  EXPECT_FALSE(resolve_artifact(dir_.path(), "state", "lanegate.db", ""));
  auto missing = resolve_artifact(dir_.path(), "report", "nope.txt", "");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
}

}  // namespace
}  // namespace lanegate::gateway::audit::testing
