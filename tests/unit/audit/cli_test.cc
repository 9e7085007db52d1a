// `lanegate keys` and `lanegate audit` as an operator and an authority use them: exit
// codes, what is printed, and the files left in the state directory.
#include <sys/stat.h>

#include <boost/json.hpp>
#include <sstream>

#include "audit_fixture.h"
#include "core/metrics.h"
#include "fixtures/trade_bill.h"
#include "audit/audit_cli.h"
#include "audit/audit_files.h"

namespace lanegate::audit::testing {
namespace {

constexpr std::string_view kDay = "2026-11-22";

class CliTest : public AuditTest {
 protected:
  int audit(std::vector<std::string> args, FetchBill fetch = {}) {
    out_.str("");
    err_.str("");
    return audit_command(*db_, dir_.path(), 480, args, std::move(fetch), out_, err_, clock_);
  }
  // As lanegate runs it: the box's [provider] names the merchant.
  int audit_as_box(std::vector<std::string> args, BillOwner owner) {
    out_.str("");
    err_.str("");
    return audit_command(*db_, dir_.path(), 480, args, {}, out_, err_, clock_, owner);
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
  const std::string bill = bill_text({BillLine::paid("T1", "5.00")});
  std::string asked;
  auto fetch = [&](std::string date) -> Result<std::string> {
    asked = date;
    return bill;
  };
  const std::vector<std::string> args{"reconcile", "--date", std::string(kDay), "--mchid",
                                      "1900000109"};
  ASSERT_EQ(audit(args, fetch), 0) << err_.str();
  EXPECT_EQ(asked, kDay);
  EXPECT_NE(out_.str().find("Every trade matched"), std::string::npos) << out_.str();
  const auto reports = dir_.path() / "reports";
  EXPECT_EQ(read_text(reports / "tradebill-2026-11-22.csv"), bill);
  EXPECT_TRUE(std::filesystem::exists(reports / "reconcile-2026-11-22.txt"));
  EXPECT_TRUE(std::filesystem::exists(reports / "reconcile-2026-11-22.json"));

  // A planted difference: exit 1; --json prints the machine-readable report.
  append_one(
      event(ledger::Kind::kChargeSettled, "T2", 700, at("2026-11-22T10:00:00+08:00"), "SUCCESS"));
  auto json_args = args;
  json_args.push_back("--json");
  EXPECT_EQ(audit(json_args, fetch), 1);
  EXPECT_NE(out_.str().find("\"missing_at_provider\":1"), std::string::npos) << out_.str();

  // From a file, without a provider client.
  write_text(dir_.path() / "bill.csv", bill);
  auto file_args = args;
  file_args.insert(file_args.end(), {"--bill", (dir_.path() / "bill.csv").string()});
  EXPECT_EQ(audit(file_args), 1);
  EXPECT_NE(out_.str().find("missing_at_provider T2"), std::string::npos);
}

TEST_F(CliTest, ReconcileReportsDownloadAndParseFailures) {
  const std::vector<std::string> args{"reconcile", "--date", std::string(kDay), "--mchid",
                                      "1900000109"};
  auto down = [](std::string) -> Result<std::string> {
    return fail(Errc::kUnavailable, "uplink down");
  };
  EXPECT_EQ(audit(args, down), 1);
  EXPECT_NE(err_.str().find("uplink down"), std::string::npos);
  auto garbage = [](std::string) -> Result<std::string> { return std::string("<html>"); };
  EXPECT_EQ(audit(args, garbage), 1);
  EXPECT_NE(err_.str().find("line 1, column 交易时间"), std::string::npos) << err_.str();
  EXPECT_EQ(audit(args), 2);  // no client, no --bill
  // Whose lines to compare must be said: a partner bill holds other merchants' money.
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay), "--bill", "x.csv"}), 2);
  EXPECT_NE(err_.str().find("no merchant: configure [provider] or pass --mchid"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay), "--mchid", "1900000109", "--sub-mchid",
                   "0", "--bill", "x.csv"}),
            2);
}

// The auditor's run against the partner fixture (the spec's layout byte for byte: BOM,
// CRLF, backticks, two special merchants and the service provider's own line): every
// category shows up in the text and JSON reports, and the other merchants' lines are only
// counted even where an order number collides with one of ours.
TEST_F(CliTest, ReconcilePartnerBillAsAnAuditorRunsIt) {
  const auto settled = [&](std::string no, std::int64_t fen, std::string_view when) {
    append_one(event(ledger::Kind::kChargeSettled, std::move(no), fen, at(when), "SUCCESS"));
  };
  const auto refunded = [&](std::string no, std::int64_t fen) {
    append_one(event(ledger::Kind::kRefund, std::move(no), fen, at("2026-11-22T16:00:00+08:00"),
                     "REFUND"));
  };
  settled("LG001", 1500, "2026-11-22T08:15:03+08:00");  // seq 1: matched
  settled("LG002", 850, "2026-11-22T08:40:12+08:00");   // seq 2: the bill says 8.00
  append_one(event(ledger::Kind::kChargeAccepted, "LG003", 1200, at("2026-11-22T09:05:39+08:00"),
                   "ACCEPTED"));                        // seq 3: never settled locally
  settled("LG004", 600, "2026-11-22T09:30:00+08:00");   // seq 4: only another merchant's billed
  settled("LG005", 2000, "2026-11-22T10:12:10+08:00");  // seq 5: 2.00 coupon, settlement 18.00
  settled("LG006", 1000, "2026-11-21T18:00:00+08:00");  // seq 6: paid yesterday,
  refunded("LG006", 1000);                              // seq 7: refunded today
  settled("LG007", 500, "2026-11-22T12:01:16+08:00");   // seq 8: paid and
  refunded("LG007", 500);                               // seq 9: refunded today
  refunded("LG009", 450);                               // seq 10: the bill refunds 4.00
  append_one(event(ledger::Kind::kChargeFailed, "LG010", 900, at("2026-11-22T13:00:00+08:00"),
                   "PAY_FAIL"));  // seq 11: failed, not billed
  refunded("LG011", 200);         // seq 12: no REFUND line
  append_one(event(ledger::Kind::kChargeFailed, "LG012", 700, at("2026-11-22T11:30:01+08:00"),
                   "PAY_FAIL"));  // seq 13: billed SUCCESS
  append_one(
      event(ledger::Kind::kChargeSettled, "CASH1", 2300, at("2026-11-22T14:00:00+08:00"), "CASH"));

  const std::string fixture = bill_fixture("tradebill-partner.csv").string();
  std::vector<std::string> args{"reconcile", "--date",     std::string(kDay), "--bill",    fixture,
                                "--mchid",   "1900000100", "--sub-mchid",     "1900000201"};
  ASSERT_EQ(audit(args), 1) << err_.str();
  const std::string text = out_.str();
  for (std::string_view line : {
           "Merchant 1900000100/1900000201\n",
           "  matched                         3  ",
           "  missing_at_provider             1  ",
           "  missing_locally                 1  ",
           "  amount_differs                  1  ",
           "  state_differs                   1  ",
           "  failed_not_billed               1  ",
           "  refund_matched                  2  ",
           "  refund_missing_at_provider      1  ",
           "  refund_missing_locally          1  ",
           "  refund_amount_differs           1  ",
           "  refund_not_successful           0  ",
           "  unknown_bill_state              0  ",
           "  ledger   paid 54.50, refunded 21.50\n",
           "  bill     paid 67.00 (订单金额; settlement 65.00), refunded 22.00 (申请退款金额; "
           "settlement 22.00), fee 0.25800\n",
           "  settled outside the provider (not compared): 1 records, 23.00\n",
           "Bill lines of other merchants (not compared): 3 (1900000100/0: 1, "
           "1900000100/1900000202: 2)\n",
           "Bill summary (line 16): 13 lines, settlement 102.00, refunds 22.00, fee 0.48000, "
           "orders 104.00, requested refunds 22.00\n",
           "  amount_differs LG002: ledger charge_settled 8.50 (seq 2); bill SUCCESS 8.00 "
           "(settlement 8.00, line 3)\n",
           "  missing_at_provider LG004: ledger charge_settled 6.00 (seq 4); bill none\n",
           "  missing_locally LG003: ledger none; bill SUCCESS 12.00 (settlement 12.00, line 4); "
           "the ledger's latest record is charge_accepted 12.00 at 2026-11-22T09:05:39+08:00 "
           "(seq 3)\n",
           "  state_differs LG012: ledger charge_failed 7.00 (seq 13); bill SUCCESS 7.00 "
           "(settlement 7.00, line 6)\n",
           "  refund_missing_locally LG008: ledger none; bill REFUND 3.00 (settlement 3.00, "
           "refund RF-LG008, line 10)\n",
           "  refund_amount_differs LG009: ledger refund 4.50 (seq 10); bill REFUND 4.00 "
           "(settlement 4.00, refund RF-LG009, line 11)\n",
           "  refund_missing_at_provider LG011: ledger refund 2.00 (seq 12); bill none\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << text;
  }
  EXPECT_EQ(text.find("bill warning"), std::string::npos) << text;  // the summary agrees
  EXPECT_EQ(text.find(" LG001:"), std::string::npos);  // matched items are only counted
  EXPECT_EQ(text.find("K-77"), std::string::npos);
  EXPECT_EQ(text.find("SP-0001"), std::string::npos);

  // The same in the JSON file kept beside the bill, as the auditor API serves it.
  const auto reports = dir_.path() / "reports";
  EXPECT_EQ(read_text(reports / "tradebill-2026-11-22.csv"), read_text(fixture));
  EXPECT_EQ(read_text(reports / "reconcile-2026-11-22.txt"), text);
  const auto json =
      boost::json::parse(read_text(reports / "reconcile-2026-11-22.json")).as_object();
  EXPECT_FALSE(json.at("clean").as_bool());
  EXPECT_EQ(json.at("merchant").as_object().at("sub_mchid").as_string(), "1900000201");
  const auto& counts = json.at("counts").as_object();
  EXPECT_EQ(counts.at("matched").as_int64(), 3);
  EXPECT_EQ(counts.at("refund_matched").as_int64(), 2);
  EXPECT_EQ(counts.at("state_differs").as_int64(), 1);
  EXPECT_EQ(json.at("other_merchants").as_object().at("rows").as_int64(), 3);
  EXPECT_EQ(json.at("totals_fen").as_object().at("bill_settlement").as_int64(), 6500);
  EXPECT_EQ(json.at("bill_fee_yuan").as_string(), "0.25800");
  std::map<std::string, std::string> category_of;  // "LG007" (payment), "LG007/refund"
  for (const auto& v : json.at("items").as_array()) {
    const auto& it = v.as_object();
    const std::string cat(it.at("category").as_string());
    const std::string key = std::string(it.at("out_trade_no").as_string()) +
                            (cat.starts_with("refund_") ? "/refund" : "");
    EXPECT_TRUE(category_of.emplace(key, cat).second) << "two items for " << key;
  }
  const std::map<std::string, std::string> expected{
      {"LG001", "matched"},
      {"LG002", "amount_differs"},
      {"LG003", "missing_locally"},
      {"LG004", "missing_at_provider"},
      {"LG005", "matched"},
      {"LG006/refund", "refund_matched"},
      {"LG007", "matched"},
      {"LG007/refund", "refund_matched"},
      {"LG008/refund", "refund_missing_locally"},
      {"LG009/refund", "refund_amount_differs"},
      {"LG010", "failed_not_billed"},
      {"LG011/refund", "refund_missing_at_provider"},
      {"LG012", "state_differs"},
  };
  EXPECT_EQ(category_of, expected);

  // --json prints the same document.
  args.push_back("--json");
  EXPECT_EQ(audit(args), 1);
  EXPECT_EQ(out_.str(), read_text(reports / "reconcile-2026-11-22.json"));
}

TEST_F(CliTest, ReconcileDirectBillCleanDay) {
  append_one(
      event(ledger::Kind::kChargeSettled, "D001", 300, at("2026-11-22T07:58:31+08:00"), "SUCCESS"));
  append_one(event(ledger::Kind::kChargeSettled, "D002", 2550, at("2026-11-22T09:12:46+08:00"),
                   "SUCCESS"));
  append_one(event(ledger::Kind::kRefund, "D001", 300, at("2026-11-22T10:03:01+08:00"), "REFUND"));
  const std::string fixture = bill_fixture("tradebill-direct.csv").string();
  ASSERT_EQ(
      audit({"reconcile", "--date", std::string(kDay), "--bill", fixture, "--mchid", "1900000109"}),
      0)
      << err_.str() << out_.str();
  const std::string text = out_.str();
  EXPECT_NE(text.find("Merchant 1900000109 (direct)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  matched                         2  "), std::string::npos) << text;
  EXPECT_NE(text.find("  refund_matched                  1  "), std::string::npos) << text;
  EXPECT_NE(text.find("Bill lines of other merchants (not compared): 0\n"), std::string::npos);
  EXPECT_NE(text.find("Every trade matched.\n"), std::string::npos);

  // The same bill read as a special merchant's: none of its lines are ours.
  EXPECT_EQ(audit({"reconcile", "--date", std::string(kDay), "--bill", fixture, "--mchid",
                   "1900000109", "--sub-mchid", "1900000201"}),
            1);
  EXPECT_NE(out_.str().find("bill warning: no bill line belongs to merchant"), std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("  missing_at_provider             2  "), std::string::npos);

  // As the box runs it: no --mchid, the configured merchant is used.
  ASSERT_EQ(audit_as_box({"reconcile", "--date", std::string(kDay), "--bill", fixture},
                         BillOwner{"1900000109", ""}),
            0)
      << err_.str() << out_.str();
  EXPECT_NE(out_.str().find("Merchant 1900000109 (direct)\n"), std::string::npos) << out_.str();
}

// What an auditor sees when the bill is not in the spec's layout: exit 1, the column and
// the line named, no report written, the refusal counted.
TEST_F(CliTest, ReconcileRefusesABillOutOfLayout) {
  const std::string good = read_text(bill_fixture("tradebill-direct.csv"));
  const auto run = [&](const std::string& text) {
    write_text(dir_.path() / "bill.csv", text);
    return audit({"reconcile", "--date", std::string(kDay), "--bill",
                  (dir_.path() / "bill.csv").string(), "--mchid", "1900000109"});
  };
  const auto rejected = [] {
    return metrics::Registry::global()
        .counter("lanegate_audit_bill_rejected_total", "Trade bills refused as malformed")
        .value();
  };
  const auto edit = [&](std::string_view from, std::string_view to) {
    std::string text = good;
    const std::size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? text : text.replace(at, from.size(), to);
  };
  const std::int64_t before = rejected();
  EXPECT_EQ(run(edit(",费率,", ",费率(%),")), 1);
  EXPECT_NE(err_.str().find("line 1, column 费率: the header column 24 is \"费率(%)\""),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(run(edit(",特约商户号,", ",")), 1);
  EXPECT_NE(err_.str().find("line 1, column 特约商户号"), std::string::npos) << err_.str();
  EXPECT_EQ(run(edit(",`25.50,", ",25.50,")), 1);
  EXPECT_NE(err_.str().find("line 3, column 应结订单金额: value \"25.50\" is not prefixed"),
            std::string::npos)
      << err_.str();
  EXPECT_EQ(run(edit(",`25.50,", ",`25.505,")), 1);
  EXPECT_NE(err_.str().find("line 3, column 应结订单金额: \"25.505\""), std::string::npos)
      << err_.str();
  EXPECT_EQ(rejected(), before + 4);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "reports" / "reconcile-2026-11-22.txt"));
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
  write_text(dir_.path() / "bill.csv", bill_text({}));
  audit({"reconcile", "--date", std::string(kDay), "--bill", (dir_.path() / "bill.csv").string(),
         "--mchid", "1900000109"});
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
}  // namespace lanegate::audit::testing
