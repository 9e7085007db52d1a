// Settlement -> invoice claim, on the production database schema (real SQLite file):
// a claim is made in the same transaction that settles the money, with the account the
// merge and default-title rules need; a refund voids it or queues a red letter.
#include "gateway/settlement.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <filesystem>

#include "config/config.h"
#include "core/clock.h"
#include "core/time_format.h"
#include "core/metrics.h"
#include "core/sqlite.h"
#include "gateway/daemon.h"
#include "gateway/store.h"
#include "invoice/claims.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {
namespace {

namespace fs = std::filesystem;

TxRecord cash_trip(std::string out, std::int64_t fen) {
  TxRecord t;
  t.out_trade_no = std::move(out);
  t.kind = TxKind::kTaxi;
  t.lane = "meter-1";
  t.plate = "闽A12345";
  t.plate_colour = "BLUE";
  t.amount = Money::from_fen(fen);
  t.state = ChargeState::kCash;
  t.payment_method = "cash";
  t.trip_number = 7;
  return t;
}

TxRecord parking_charge(std::string out, std::int64_t fen) {
  TxRecord t;
  t.out_trade_no = std::move(out);
  t.kind = TxKind::kParking;
  t.lane = "exit-1";
  t.plate = "粤B12345";
  t.plate_colour = "BLUE";
  t.amount = Money::from_fen(fen);
  t.state = ChargeState::kRecorded;
  // As site_parking.cc records the stay at the exit.
  t.detail = R"({"entry_time":"2026-11-22T23:50:00+08:00","exit_time":"2026-11-23T00:30:00+08:00"})";
  return t;
}

// An ETC toll exit as the toll lane records it.
TxRecord toll_charge(std::string out, std::int64_t fen) {
  TxRecord t;
  t.out_trade_no = std::move(out);
  t.kind = TxKind::kToll;
  t.lane = "toll-1";
  t.plate = "粤B12345";
  t.plate_colour = "BLUE";
  t.contract_id = "wxLGtollcontract000000000000001";
  t.amount = Money::from_fen(fen);
  t.state = ChargeState::kRecorded;
  return t;
}

class SettlementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-settle-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    db_.emplace(Database::open(dir_ / "lanegate.db").value());
    ASSERT_TRUE(db_->migrate(database_schema()));
    section_.enabled = true;
    section_.seller_name = "Test lot";
    section_.seller_tax_id = "91350100M000100Y43";
    store_.emplace(Store::open(*db_, clock_).value());
    outbox_.emplace(queue::Outbox::open(*db_, limits_, clock_).value());
    claims_.emplace(*db_, section_, clock_);
    wire_invoicing(*store_, *claims_, *outbox_, UtcOffset{480});
  }
  void TearDown() override {
    claims_.reset();
    outbox_.reset();
    store_.reset();
    db_.reset();
    fs::remove_all(dir_);
  }

  Status insert(const TxRecord& t) {
    auto txn = db_->begin();
    if (!txn) return std::unexpected(txn.error());
    auto id = store_->insert_transaction(*txn, t);
    if (!id) return std::unexpected(id.error());
    return txn->commit();
  }
  Status move(const std::string& out, ChargeState to) {
    auto txn = db_->begin();
    if (!txn) return std::unexpected(txn.error());
    if (auto s = store_->set_state(*txn, out, to, "4200000001"); !s) return s;
    return txn->commit();
  }
  std::vector<queue::Item> items(const std::string& topic) {
    return outbox_->list(queue::ListFilter{.parked = false, .topic = topic, .limit = 100}).value();
  }

  fs::path dir_;
  FakeClock clock_;
  config::QueueLimits limits_;
  config::InvoicingSection section_;
  std::optional<Database> db_;
  std::optional<Store> store_;
  std::optional<queue::Outbox> outbox_;
  std::optional<invoice::ClaimStore> claims_;
};

TEST_F(SettlementTest, CashTaxiTripGetsAnAnonymousClaim) {
  ASSERT_TRUE(insert(cash_trip("T-1", 1919)));
  auto c = claims_->find_by_transaction("T-1");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->service, "taxi");
  EXPECT_EQ(c->amount, Money::from_fen(1919));
  EXPECT_EQ(c->account_id, "");  // paid outside: no account, never merged
  EXPECT_EQ(c->token.size(), 22u);
  EXPECT_EQ(c->human_code.size(), 8u);
  EXPECT_NE(c->description.find("#7"), std::string::npos) << c->description;
}

TEST_F(SettlementTest, TaxiTripOfARiderAccountIsFiledUnderTheAccount) {
  TxRecord t = cash_trip("T-2", 2500);
  t.contract_id = "rider-42";
  ASSERT_TRUE(insert(t));
  EXPECT_EQ(claims_->find_by_transaction("T-2")->account_id, "rider-42");
}

TEST_F(SettlementTest, ParkingChargeGetsAClaimWhenItSucceedsNotBefore) {
  ASSERT_TRUE(insert(parking_charge("P-1", 600)));
  ASSERT_TRUE(move("P-1", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-1", ChargeState::kAccepted));
  EXPECT_EQ(claims_->find_by_transaction("P-1").error().code, Errc::kNotFound);
  ASSERT_TRUE(move("P-1", ChargeState::kSuccess));
  auto c = claims_->find_by_transaction("P-1");
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->service, "parking");
  EXPECT_EQ(c->account_id, "粤B12345");  // merge and default title per plate
  // The claim page is public by token: the plate is masked there.
  EXPECT_EQ(c->description.find("粤B12345"), std::string::npos) << c->description;
  // The stay travels with the claim: plate and entry/exit are the 06 lease period.
  EXPECT_EQ(c->plate, "粤B12345");
  ASSERT_TRUE(c->period_start);
  ASSERT_TRUE(c->period_end);
  EXPECT_EQ(to_unix_seconds(*c->period_start), 1795362600);
  EXPECT_EQ(to_unix_seconds(*c->period_end), 1795362600 + 40 * 60);
}

TEST_F(SettlementTest, FailedChargeZeroFareAndVoidGetNoClaim) {
  ASSERT_TRUE(insert(parking_charge("P-2", 600)));
  ASSERT_TRUE(move("P-2", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-2", ChargeState::kPayFail));
  ASSERT_TRUE(insert(cash_trip("T-0", 0)));
  ASSERT_TRUE(insert(parking_charge("P-3", 600)));
  ASSERT_TRUE(move("P-3", ChargeState::kVoid));
  for (const char* id : {"P-2", "T-0", "P-3"}) {
    EXPECT_EQ(claims_->find_by_transaction(id).error().code, Errc::kNotFound) << id;
  }
}

TEST_F(SettlementTest, ClaimCommitsOnlyWithTheSettlement) {
  {
    auto txn = db_->begin();
    ASSERT_TRUE(txn);
    ASSERT_TRUE(store_->insert_transaction(*txn, cash_trip("T-3", 1000)));
    // Inside the transaction the claim is there; rolled back, neither is.
    EXPECT_TRUE(claims_->find_by_transaction("T-3"));
    txn->rollback();
  }
  EXPECT_EQ(claims_->find_by_transaction("T-3").error().code, Errc::kNotFound);
  EXPECT_FALSE(store_->find_transaction("T-3").value().has_value());
}

TEST_F(SettlementTest, SubmittedClaimQueuesOneIssueRequestKeyedByOrderNo) {
  ASSERT_TRUE(insert(cash_trip("T-4", 1919)));
  auto c = claims_->find_by_transaction("T-4").value();
  invoice::Buyer b;
  b.kind = invoice::BuyerKind::kPerson;
  b.email = "a@example.cn";
  auto r = claims_->submit(c.token, b);
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_TRUE(claims_->submit(c.token, b));  // again: the same invoice, no second item
  auto q = items(std::string(kTopicInvoiceIssue));
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].idempotency_key, r->invoice.order_no);
  EXPECT_EQ(q[0].ordering_key, r->invoice.order_no);
  EXPECT_EQ(boost::json::parse(q[0].payload).at("invoice_id").as_int64(), r->invoice.id);
}

// A company registered for its plate gets its parking invoice without anyone asking: the
// invoice is claimed and its issue request queued in the commit that settles the money.
TEST_F(SettlementTest, AccountWithADefaultTitleIsInvoicedAtSettlement) {
  section_.default_titles.push_back(config::DefaultTitle{
      "粤B12345", "company", "深圳市鹏程示例科技有限公司", "91350100M000100Y43", "fin@example.cn", ""});
  ASSERT_TRUE(insert(parking_charge("P-7", 1200)));
  ASSERT_TRUE(move("P-7", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-7", ChargeState::kSuccess));
  auto c = claims_->find_by_transaction("P-7");
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_TRUE(c->invoice_id) << "invoiced at settlement";
  auto inv = claims_->get_invoice(*c->invoice_id).value();
  EXPECT_EQ(inv.state, invoice::InvoiceState::kClaimed);
  EXPECT_EQ(inv.buyer.title, "深圳市鹏程示例科技有限公司");
  EXPECT_EQ(inv.buyer.tax_id, "91350100M000100Y43");
  EXPECT_EQ(inv.totals.incl, Money::from_fen(1200));
  auto q = items(std::string(kTopicInvoiceIssue));
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].idempotency_key, inv.order_no);

  // Another plate has no default title: a claim only, for the driver to fill in.
  auto other = parking_charge("P-8", 600);
  other.plate = "粤B99999";
  ASSERT_TRUE(insert(other));
  ASSERT_TRUE(move("P-8", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-8", ChargeState::kSuccess));
  EXPECT_FALSE(claims_->find_by_transaction("P-8").value().invoice_id);
}

// A default title the buyer rules refuse (a wrong check character) never holds up the
// settlement: the money settles and the claim stays open for the passenger.
TEST_F(SettlementTest, RefusedDefaultTitleLeavesTheClaimOpen) {
  section_.default_titles.push_back(config::DefaultTitle{
      "粤B12345", "company", "深圳市鹏程示例科技有限公司", "91350100M000100Y40", "fin@example.cn", ""});
  ASSERT_TRUE(insert(parking_charge("P-9", 800)));
  ASSERT_TRUE(move("P-9", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-9", ChargeState::kSuccess));
  EXPECT_EQ(store_->find_transaction("P-9").value()->state, ChargeState::kSuccess);
  auto c = claims_->find_by_transaction("P-9");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->invoice_id);
  EXPECT_TRUE(items(std::string(kTopicInvoiceIssue)).empty());
}

TEST_F(SettlementTest, RefundBeforeAnyInvoiceVoidsTheClaim) {
  ASSERT_TRUE(insert(parking_charge("P-4", 800)));
  ASSERT_TRUE(move("P-4", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-4", ChargeState::kSuccess));
  ASSERT_TRUE(move("P-4", ChargeState::kRefund));
  EXPECT_TRUE(claims_->find_by_transaction("P-4")->voided);
}

TEST_F(SettlementTest, RefundWhileTheInvoiceIsBeingIssuedIsQueuedBehindIt) {
  ASSERT_TRUE(insert(parking_charge("P-5", 800)));
  ASSERT_TRUE(move("P-5", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-5", ChargeState::kSuccess));
  auto c = claims_->find_by_transaction("P-5").value();
  invoice::Buyer b;
  b.kind = invoice::BuyerKind::kPerson;
  b.phone = "13800138000";
  auto inv = claims_->submit(c.token, b).value().invoice;
  // The refund is never held up by its invoice.
  ASSERT_TRUE(move("P-5", ChargeState::kRefund));
  EXPECT_EQ(store_->find_transaction("P-5").value()->state, ChargeState::kRefund);
  auto q = items(std::string(kTopicInvoiceRefund));
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].ordering_key, inv.order_no);  // runs after the blue invoice's item
  EXPECT_EQ(boost::json::parse(q[0].payload).at("transaction_id").as_string(), "P-5");
}

// Issue 17: toll invoices come from the national toll e-bill platform, never from here.
// A settled toll makes no claim (so the receipt can never offer one), even for an account
// with a default title; the hook counts it, and its refund finds nothing to reverse.
TEST_F(SettlementTest, SettledTollMakesNoClaimAndIsCounted) {
  const metrics::Labels toll_label = {{"outcome", "toll_national_platform"}};
  // -1 while the series does not exist yet.
  const auto before = std::max<std::int64_t>(
      0, metrics::Registry::global().value("lanegate_invoice_settlement_claims_total", toll_label));
  section_.default_titles.push_back(config::DefaultTitle{
      "wxLGtollcontract000000000000001", "company", "深圳市鹏程示例科技有限公司",
      "91350100M000100Y43", "fin@example.cn", ""});
  ASSERT_TRUE(insert(toll_charge("E-1", 4500)));
  ASSERT_TRUE(move("E-1", ChargeState::kSubmitting));
  ASSERT_TRUE(move("E-1", ChargeState::kSuccess));
  EXPECT_EQ(store_->find_transaction("E-1").value()->state, ChargeState::kSuccess);
  EXPECT_EQ(claims_->find_by_transaction("E-1").error().code, Errc::kNotFound);
  EXPECT_TRUE(items(std::string(kTopicInvoiceIssue)).empty());
  EXPECT_EQ(metrics::Registry::global().value("lanegate_invoice_settlement_claims_total",
                                              toll_label),
            before + 1);
  // A refund of the toll settles; there is no claim to void and no red letter to queue.
  ASSERT_TRUE(move("E-1", ChargeState::kRefund));
  EXPECT_EQ(store_->find_transaction("E-1").value()->state, ChargeState::kRefund);
  EXPECT_EQ(claims_->find_by_transaction("E-1").error().code, Errc::kNotFound);
  EXPECT_TRUE(items(std::string(kTopicInvoiceRefund)).empty());
  // Parking on the same box still gets its claim.
  ASSERT_TRUE(insert(parking_charge("P-10", 600)));
  ASSERT_TRUE(move("P-10", ChargeState::kSubmitting));
  ASSERT_TRUE(move("P-10", ChargeState::kSuccess));
  EXPECT_TRUE(claims_->find_by_transaction("P-10"));
}

TEST(SettledTransaction, AccountRules) {
  TxRecord t;
  t.kind = TxKind::kToll;
  t.plate = "粤B12345";
  EXPECT_EQ(invoice_account(t), "粤B12345");
  t.contract_id = "ETC-1";
  EXPECT_EQ(invoice_account(t), "ETC-1");
  t.kind = TxKind::kTaxi;
  t.contract_id.clear();
  EXPECT_EQ(invoice_account(t), "");
  t.updated_at = SystemTime(std::chrono::seconds(1'790'000'000));
  t.amount = Money::from_fen(123);
  t.out_trade_no = "X";
  auto s = settled_transaction(t, UtcOffset{480});
  EXPECT_EQ(s.transaction_id, "X");
  EXPECT_EQ(s.service, "taxi");
  EXPECT_EQ(s.settled_at, t.updated_at);
}

// The taxi trip's boarding and alighting (meter local time, "2026-11-22T08:30") become the
// claim's period: the 09 row's travel date is the boarding day, not the settlement's.
TEST(SettledTransaction, TaxiTripKeepsTheMetersBoardingAndAlighting) {
  TxRecord t;
  t.kind = TxKind::kTaxi;
  t.out_trade_no = "T-9";
  t.amount = Money::from_fen(1919);
  t.updated_at = SystemTime(std::chrono::seconds(1'795'370'400));  // 2026-11-23 00:40 CST
  t.detail = R"({"meter":"m1","boarding":"2026-11-22T23:55","alighting":"2026-11-23T00:31"})";
  auto s = settled_transaction(t, UtcOffset{480});
  ASSERT_TRUE(s.period_start && s.period_end);
  EXPECT_EQ(format_rfc3339(*s.period_start, UtcOffset{480}), "2026-11-22T23:55:00+08:00");
  EXPECT_EQ(format_rfc3339(*s.period_end, UtcOffset{480}), "2026-11-23T00:31:00+08:00");
  t.detail = R"({"boarding":"yesterday"})";  // unreadable: no period, never a guess
  EXPECT_FALSE(settled_transaction(t, UtcOffset{480}).period_start);
}

}  // namespace
}  // namespace lanegate::gateway
