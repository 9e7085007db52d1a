// Issue #8: issuing and reversing an invoice leave audit ledger records, committed with
// the state change (claims.h I9).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/ledger.h"
#include "invoice/claims.h"
#include "test_db.h"

namespace lanegate::invoice {
namespace {

using testing::person;
using testing::trip;

class LedgerRecordsTest : public ::testing::Test {
 protected:
  std::vector<ledger::LedgerEntry> records() {
    auto h = ledger::head(db);
    EXPECT_TRUE(h);
    if (!h || !*h) {
      return {};
    }
    return ledger::read(db, ledger::SeqRange{1, (*h)->seq}).value();
  }
  std::int64_t issue(std::int64_t id, std::string number) {
    EXPECT_TRUE(store.mark_issuing(id, "serial-" + std::to_string(id)));
    auto s = store.mark_issued(id, number, "https://platform.example/" + number + ".pdf");
    EXPECT_TRUE(s) << s.error().to_string();
    return id;
  }

  testing::TempDir dir;
  Database db = testing::open_migrated(dir.path() / "gw.db");
  FakeClock clock;
  config::InvoicingSection section = testing::test_section();
  ClaimStore store{db, section, clock};
};

TEST_F(LedgerRecordsTest, IssuedBlueInvoiceAppendsInvoiceIssued) {
  auto c = store.create_claim(trip("T-1", "19.19", clock));
  ASSERT_TRUE(c);
  auto inv = store.submit(c->token, person()).value().invoice;
  EXPECT_TRUE(records().empty());  // claimed is not issued
  issue(inv.id, "26350000000000000001");
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  const auto& e = r[0].event;
  EXPECT_EQ(ledger::kind_name(e.kind), "invoice_issued");
  EXPECT_EQ(e.out_trade_no, "T-1");
  EXPECT_EQ(e.amount, *Money::parse("19.19"));
  EXPECT_EQ(e.state, "ISSUED");
  EXPECT_EQ(e.actor, "platform");
  auto d = boost::json::parse(e.detail).as_object();
  EXPECT_EQ(d.at("invoice_number").as_string(), "26350000000000000001");
  EXPECT_EQ(d.at("order_no").as_string(), inv.order_no);
  EXPECT_EQ(d.at("excl_fen").as_int64() + d.at("tax_fen").as_int64(), 1919);
  EXPECT_EQ(d.at("transactions").as_array().size(), 1u);
  // The same result delivered twice (callback and poll) records nothing more.
  EXPECT_TRUE(store.mark_issued(inv.id, "26350000000000000001", "x"));
  EXPECT_EQ(records().size(), 1u);
}

TEST_F(LedgerRecordsTest, RedLetterIssuedAppendsInvoiceReversedForTheBlueInvoice) {
  auto c = store.create_claim(trip("T-2", "25.00", clock));
  auto blue = store.submit(c->token, person()).value().invoice;
  issue(blue.id, "26350000000000000002");
  auto red = store.on_refund("T-2");
  ASSERT_TRUE(red && *red) << (red ? "no red invoice" : red.error().to_string());
  EXPECT_EQ(records().size(), 1u);  // requested, not yet issued
  issue((*red)->id, "26350000000000000003");
  auto r = records();
  ASSERT_EQ(r.size(), 2u);  // the red invoice itself is not a second "issued"
  const auto& e = r[1].event;
  EXPECT_EQ(ledger::kind_name(e.kind), "invoice_reversed");
  EXPECT_EQ(e.out_trade_no, "T-2");
  EXPECT_EQ(e.amount, *Money::parse("25.00"));  // non-negative; the kind gives the direction
  EXPECT_EQ(e.state, "REVERSED");
  auto d = boost::json::parse(e.detail).as_object();
  EXPECT_EQ(d.at("invoice_number").as_string(), "26350000000000000002");
  EXPECT_EQ(d.at("red_invoice_number").as_string(), "26350000000000000003");
  EXPECT_EQ(d.at("invoice_id").as_int64(), blue.id);
  EXPECT_EQ(store.get_invoice(blue.id)->state, InvoiceState::kReversed);
  auto chain = ledger::verify_stored(db, ledger::SeqRange{1, 2});
  ASSERT_TRUE(chain);
  EXPECT_TRUE(chain->ok()) << chain->problem;
}

TEST_F(LedgerRecordsTest, MergedInvoiceNamesEveryTransaction) {
  store.create_claim(trip("M-1", "10.00", clock, "acct-7")).value();
  store.create_claim(trip("M-2", "5.50", clock, "acct-7")).value();
  const std::vector<std::string> ids = {"M-1", "M-2"};
  auto inv = store.submit_merged("acct-7", ids, person()).value().invoice;
  issue(inv.id, "26350000000000000004");
  auto r = records();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].event.out_trade_no, "");  // several: listed in detail
  EXPECT_EQ(r[0].event.amount, *Money::parse("15.50"));
  EXPECT_EQ(boost::json::parse(r[0].event.detail).at("transactions").as_array().size(), 2u);
}

TEST_F(LedgerRecordsTest, NoLedgerTableMeansNoIssuedState) {
  // Both commit or neither: without the ledger the state change is refused too.
  testing::TempDir other;
  Database bare = Database::open(other.path() / "bare.db").value();
  ASSERT_TRUE(bare.migrate(invoice_schema_steps()));
  ClaimStore s2(bare, section, clock);
  auto c = s2.create_claim(trip("B-1", "3.00", clock));
  auto inv = s2.submit(c->token, person()).value().invoice;
  ASSERT_TRUE(s2.mark_issuing(inv.id, "serial"));
  EXPECT_FALSE(s2.mark_issued(inv.id, "26350000000000000005", "x"));
  EXPECT_EQ(s2.get_invoice(inv.id)->state, InvoiceState::kIssuing);
}

}  // namespace
}  // namespace lanegate::invoice
