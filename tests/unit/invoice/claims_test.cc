// Claims: creation at settlement, window, double claim, merge, guessing limit, lifecycle.
#include "invoice/claims.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "invoice/claim_api.h"
#include "test_db.h"

namespace lanegate::invoice {
namespace {

using namespace std::chrono_literals;
using testing::company;
using testing::person;
using testing::trip;

class ClaimsTest : public ::testing::Test {
 protected:
  testing::TempDir dir;
  Database db = testing::open_migrated(dir.path() / "gw.db");
  FakeClock clock;
  config::InvoicingSection section = testing::test_section();
  ClaimStore store{db, section, clock};
};

TEST_F(ClaimsTest, ClaimHasUnguessableTokenAndTypableCode) {
  std::set<std::string> tokens;
  std::set<std::string> codes;
  for (int i = 0; i < 200; ++i) {
    auto c = store.create_claim(trip("t" + std::to_string(i), "19.19", clock));
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->token.size(), 22u);  // 128 bits in base64url
    EXPECT_EQ(c->token.find_first_not_of(
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              std::string::npos);
    EXPECT_EQ(c->human_code.size(), 8u);
    EXPECT_EQ(c->human_code.find_first_of("01ILO"), std::string::npos) << c->human_code;
    tokens.insert(c->token);
    codes.insert(c->human_code);
  }
  EXPECT_EQ(tokens.size(), 200u);
  EXPECT_EQ(codes.size(), 200u);
}

TEST_F(ClaimsTest, CreateIsIdempotentPerTransaction) {
  auto a = store.create_claim(trip("t1", "19.19", clock));
  auto b = store.create_claim(trip("t1", "19.19", clock));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->token, b->token);
  EXPECT_EQ(a->human_code, b->human_code);
  // The same transaction id with another amount is a caller bug, refused loudly.
  auto c = store.create_claim(trip("t1", "19.20", clock));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(store.find_by_transaction("t1")->amount, *Money::parse("19.19"));
}

TEST_F(ClaimsTest, RefusesNonPositiveAmountAndUnknownService) {
  auto zero = store.create_claim(trip("t0", "0.00", clock));
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().field, "amount");
  auto bad = store.create_claim(trip("t2", "1.00", clock, "", "ferry"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "service");
}

// Issue 17: the gateway never issues toll invoices (spec "Tolls"). A settled toll gets no
// claim, and the refusal says where the driver gets the invoice instead.
TEST_F(ClaimsTest, TollClaimIsRefusedAndPointsToTheNationalPlatform) {
  auto toll = store.create_claim(trip("toll-1", "45.00", clock, "粤B12345", "toll"));
  ASSERT_FALSE(toll);
  EXPECT_EQ(toll.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(toll.error().field, "service");
  EXPECT_NE(toll.error().message.find("www.txffp.com"), std::string::npos) << toll.error().message;
  EXPECT_NE(toll.error().message.find("票根"), std::string::npos) << toll.error().message;
  EXPECT_EQ(store.find_by_transaction("toll-1").error().code, Errc::kNotFound);
  // Not through the default-title path either.
  auto auto_claim = store.claim_with_default_title(trip("toll-2", "45.00", clock, "粤B12345", "toll"),
                                                   company());
  ASSERT_FALSE(auto_claim);
  EXPECT_EQ(auto_claim.error().field, "service");
  EXPECT_EQ(store.find_by_transaction("toll-2").error().code, Errc::kNotFound);
}

// A toll claim as the gateway wrote it before issue 17 (settlement claimed tolls too).
Claim insert_legacy_toll_claim(Database& db, ClaimStore& store, const std::string& id,
                               const FakeClock& clock, std::string_view token,
                               std::string_view code) {
  auto st = db.prepare(
      "INSERT INTO invoice_claim(token, human_code, transaction_id, account_id, service, "
      "amount_fen, description, settled_at, expires_at, created_at) "
      "VALUES (?,?,?,?,'toll',4500,'通行费 粤B***45',?,?,?)");
  EXPECT_TRUE(st);
  const std::int64_t now = clock.unix_seconds();
  st->bind_all(std::string(token), std::string(code), id, std::string("粤B12345"), now,
               now + 30 * 86400, now);
  EXPECT_TRUE(st->run());
  return store.find_by_transaction(id).value();
}

TEST_F(ClaimsTest, LegacyTollClaimIsNeverInvoiced) {
  const Claim legacy = insert_legacy_toll_claim(db, store, "toll-old", clock,
                                                "TollLegacyToken0000001", "TQ4M2XAB");
  auto sub = store.submit(legacy.token, company());
  ASSERT_FALSE(sub);
  EXPECT_EQ(sub.error().code, Errc::kRejected);
  EXPECT_EQ(sub.error().field, "service");
  EXPECT_NE(sub.error().message.find("www.txffp.com"), std::string::npos);
  // Even with an invalid buyer the passenger learns where to go, not which field is wrong.
  EXPECT_EQ(store.submit(legacy.token, Buyer{BuyerKind::kCompany, "", "", "", ""}).error().field,
            "service");
  // Merged with a taxi trip of the same account: all or nothing, nothing.
  auto taxi = store.create_claim(trip("taxi-1", "19.19", clock, "粤B12345"));
  ASSERT_TRUE(taxi);
  const std::vector<std::string> both = {"taxi-1", "toll-old"};
  auto merged = store.submit_merged("粤B12345", both, company());
  ASSERT_FALSE(merged);
  EXPECT_EQ(merged.error().field, "service");
  EXPECT_FALSE(store.find_by_transaction("taxi-1")->invoice_id);
  EXPECT_FALSE(store.find_by_transaction("toll-old")->invoice_id);
  auto none = store.invoices_in_state(InvoiceState::kClaimed);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST_F(ClaimsTest, LegacyFailedTollInvoiceIsNotRetried) {
  // Before issue 17 a toll invoice could be claimed and then refused by the platform.
  const std::int64_t now = clock.unix_seconds();
  ASSERT_TRUE(db.exec(
      "INSERT INTO invoice_document(id, order_no, kind, state, buyer_kind, buyer_title, "
      "buyer_tax_id, buyer_email, buyer_phone, excl_fen, tax_fen, incl_fen, fail_reason, "
      "created_at, updated_at) VALUES (7, 'LG000000000000000007', 'blue', 'failed', 'person', "
      "'个人', '', '', '13800138000', 4369, 131, 4500, 'not a seller of tolls', " +
      std::to_string(now) + ", " + std::to_string(now) + ");"
      "INSERT INTO invoice_line VALUES (7, 1, 'toll-old', 'toll', '*经营租赁*通行费', "
      "'3040502020301000000', 3, '08', 4369, 131, 4500);"));
  bool hook_ran = false;
  store.set_issue_hook([&](Transaction&, const InvoiceRecord&) -> Status {
    hook_ran = true;
    return {};
  });
  auto retried = store.retry_failed(7);
  ASSERT_FALSE(retried);
  EXPECT_EQ(retried.error().code, Errc::kRejected);
  EXPECT_EQ(retried.error().field, "service");
  EXPECT_EQ(store.get_invoice(7)->state, InvoiceState::kFailed);
  EXPECT_FALSE(hook_ran);  // nothing queued for the platform
}

TEST_F(ClaimsTest, SubmitCreatesInvoiceWithExactSplit) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  ASSERT_TRUE(c);
  auto r = store.submit(c->token, company());
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_TRUE(r->created);
  const InvoiceRecord& inv = r->invoice;
  EXPECT_EQ(inv.state, InvoiceState::kClaimed);
  EXPECT_EQ(inv.order_no.size(), 20u);
  ASSERT_EQ(inv.lines.size(), 1u);
  EXPECT_EQ(inv.lines[0].tax_code, "3010101020203000000");
  EXPECT_EQ(inv.totals.excl, *Money::parse("18.63"));
  EXPECT_EQ(inv.totals.tax, *Money::parse("0.56"));
  EXPECT_EQ(inv.totals.incl, *Money::parse("19.19"));
  EXPECT_EQ(inv.buyer.tax_id, "91110000802100433B");
  auto again = store.find_by_token(c->token);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->invoice_id, inv.id);
}

TEST_F(ClaimsTest, DoubleClaimReturnsTheExistingInvoice) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  auto first = store.submit(c->token, company());
  ASSERT_TRUE(first);
  Buyer other = person();
  other.title = "张三";
  auto second = store.submit(c->token, other);
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->invoice.id, first->invoice.id);
  EXPECT_EQ(second->invoice.buyer.title, "Example Logistics Ltd");  // first one wins
}

TEST_F(ClaimsTest, ClaimWindowFromConfig) {
  section.claim_window_days = 30;
  auto c = store.create_claim(trip("t1", "19.19", clock));
  clock.advance(std::chrono::hours(24 * 30) - 1s);
  // Still inside on the last second.
  auto c2 = store.create_claim(trip("t2", "5.61", clock));
  clock.advance(2s);
  auto late = store.submit(c->token, person());
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, Errc::kRejected);
  EXPECT_EQ(late.error().field, "token");
  EXPECT_NE(late.error().message.find("30 days"), std::string::npos);
  EXPECT_TRUE(store.submit(c2->token, person()));
}

TEST_F(ClaimsTest, ValidationErrorsNameTheField) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  Buyer b = company();
  b.tax_id = "91110000802100433C";
  auto r = store.submit(c->token, b);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "tax_id");
  EXPECT_NE(r.error().message.find("check character"), std::string::npos);
  b = company();
  b.title = "  ";
  EXPECT_EQ(store.submit(c->token, b).error().field, "title");
  b = company();
  b.email = "";
  EXPECT_EQ(store.submit(c->token, b).error().field, "email");
  b = company();
  b.email = "no-at-sign.example.cn";
  EXPECT_EQ(store.submit(c->token, b).error().field, "email");
  b = person();
  b.phone = "12345";
  EXPECT_EQ(store.submit(c->token, b).error().field, "phone");
  b = person();
  b.tax_id = "91110000802100433B";
  EXPECT_EQ(store.submit(c->token, b).error().field, "tax_id");
  // Nothing was created by the refused submissions.
  EXPECT_FALSE(store.find_by_token(c->token)->invoice_id);
}

TEST_F(ClaimsTest, PersonDefaultsTitleAndNormalisesPhone) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  Buyer b = person();
  b.phone = "+86 138-0013-8000";
  auto r = store.submit(c->token, b);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->invoice.buyer.title, "个人");
  EXPECT_EQ(r->invoice.buyer.phone, "13800138000");
}

TEST_F(ClaimsTest, MergeSeveralTripsOfOneAccount) {
  section.parking.specific_business = false;  // a site issuing parking as a plain line
  store.create_claim(trip("t1", "19.19", clock, "acct-1")).value();
  store.create_claim(trip("t2", "5.61", clock, "acct-1")).value();
  store.create_claim(trip("p1", "9.00", clock, "acct-1", "parking")).value();
  store.create_claim(trip("x1", "3.00", clock, "acct-2")).value();
  const std::vector<std::string> ids = {"t1", "t2", "p1"};
  auto r = store.submit_merged("acct-1", ids, company());
  ASSERT_TRUE(r) << r.error().to_string();
  ASSERT_EQ(r->invoice.lines.size(), 3u);
  EXPECT_EQ(r->invoice.lines[2].rate_percent, 9);
  EXPECT_EQ(r->invoice.totals.excl, *Money::parse("32.34"));  // 18.63 + 5.45 + 8.26
  EXPECT_EQ(r->invoice.totals.tax, *Money::parse("1.46"));    // 0.56 + 0.16 + 0.74
  EXPECT_EQ(r->invoice.totals.incl, *Money::parse("33.80"));
  for (const auto& id : ids) {
    EXPECT_EQ(store.find_by_transaction(id)->invoice_id, r->invoice.id);
  }
  // A single-trip claim of a merged trip sees the merged invoice.
  auto single = store.submit(store.find_by_transaction("t2")->token, person());
  ASSERT_TRUE(single);
  EXPECT_FALSE(single->created);
  EXPECT_EQ(single->invoice.id, r->invoice.id);
}

// Issue 17, spec "Parking → 06": a parking invoice carries the lease block of one stay
// (06 allows exactly one line): the entry and exit dates, the lot's address, and the plate
// and times in the remark. Frozen with the invoice.
TEST_F(ClaimsTest, ParkingInvoiceIsALeaseOfItsStay) {
  section.parking.property_address = "广东省深圳市福田区";
  section.parking.detail_address = "深南大道1000号";
  section.parking.area_unit = 2;
  SettledTransaction tx = trip("p1", "9.00", clock, "acct-1", "parking");
  tx.plate = "粤B12345";
  tx.period_start = SystemTime{std::chrono::seconds(1795362600)};  // 2026-11-22 23:50 CST
  tx.period_end = *tx.period_start + std::chrono::minutes(40);
  auto claim = store.create_claim(tx);
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->plate, "粤B12345");
  auto r = store.submit(claim->token, person());
  ASSERT_TRUE(r) << r.error().to_string();
  const InvoiceRecord inv = store.get_invoice(r->invoice.id).value();
  EXPECT_EQ(inv.specific.factor, SpecificFactor::kRealPropertyLease);
  ASSERT_TRUE(inv.specific.lease);
  EXPECT_EQ(inv.specific.lease->start_date, "2026-11-22");
  EXPECT_EQ(inv.specific.lease->end_date, "2026-11-23");
  EXPECT_EQ(inv.specific.lease->detail_address, "深南大道1000号");
  EXPECT_EQ(inv.specific.remark, "车牌 粤B12345 入场 2026-11-22 23:50 出场 2026-11-23 00:30");
  // Frozen: neither the block nor the claim's trip can be rewritten.
  EXPECT_FALSE(db.exec("UPDATE invoice_document SET specific_json = '' WHERE id = " +
                       std::to_string(inv.id)));
  EXPECT_FALSE(db.exec("UPDATE invoice_claim SET plate = '粤B99999' WHERE transaction_id = 'p1'"));
}

TEST_F(ClaimsTest, AParkingStayWithoutEntryCannotBeInvoicedAndNothingIsCreated) {
  SettledTransaction tx = trip("p1", "9.00", clock, "", "parking");
  tx.period_end = clock.now();  // exit without a recorded entry
  auto claim = store.create_claim(tx).value();
  auto r = store.submit(claim.token, person());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kRejected);
  EXPECT_EQ(r.error().field, "trip");
  EXPECT_NE(r.error().message.find("entry"), std::string::npos) << r.error().message;
  EXPECT_FALSE(store.find_by_transaction("p1")->invoice_id);
}

TEST_F(ClaimsTest, ParkingLeasesAreNotMerged) {
  SettledTransaction a = trip("p1", "9.00", clock, "acct-1", "parking");
  a.period_start = clock.now() - std::chrono::hours(2);
  a.period_end = clock.now();
  store.create_claim(a).value();
  store.create_claim(trip("t1", "19.19", clock, "acct-1")).value();
  const std::vector<std::string> ids = {"t1", "p1"};
  auto r = store.submit_merged("acct-1", ids, company());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "transaction_ids");
  EXPECT_FALSE(store.find_by_transaction("t1")->invoice_id);
  EXPECT_FALSE(store.find_by_transaction("p1")->invoice_id);
}

TEST_F(ClaimsTest, MergeIsAllOrNothing) {
  store.create_claim(trip("t1", "19.19", clock, "acct-1")).value();
  store.create_claim(trip("t2", "5.61", clock, "acct-1")).value();
  store.create_claim(trip("x1", "3.00", clock, "acct-2")).value();
  const std::vector<std::string> foreign = {"t1", "x1"};
  auto r = store.submit_merged("acct-1", foreign, company());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kPermission);
  EXPECT_NE(r.error().message.find("x1"), std::string::npos);
  EXPECT_FALSE(store.find_by_transaction("t1")->invoice_id);  // rolled back
  // Already invoiced trip refuses the whole merge.
  ASSERT_TRUE(store.submit(store.find_by_transaction("t2")->token, person()));
  const std::vector<std::string> dup = {"t1", "t2"};
  auto r2 = store.submit_merged("acct-1", dup, company());
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, Errc::kAlreadyExists);
  EXPECT_FALSE(store.find_by_transaction("t1")->invoice_id);
  const std::vector<std::string> twice = {"t1", "t1"};
  EXPECT_FALSE(store.submit_merged("acct-1", twice, company()));
}

TEST_F(ClaimsTest, HumanCodeLookupIsRateLimitedPerClient) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  // Typed in lower case with a dash: still found.
  std::string typed = c->human_code.substr(0, 4) + "-" + c->human_code.substr(4);
  for (char& ch : typed) {
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  auto found = store.find_by_human_code(typed, "10.0.0.1");
  ASSERT_TRUE(found) << found.error().to_string();
  EXPECT_EQ(found->token, c->token);

  const std::string wrong = c->human_code == "22222222" ? "33333333" : "22222222";
  for (int i = 0; i < 5; ++i) {
    auto miss = store.find_by_human_code(wrong, "10.0.0.9");
    ASSERT_FALSE(miss);
    EXPECT_EQ(miss.error().code, Errc::kNotFound);
  }
  // Locked now, even for the right code.
  auto locked = store.find_by_human_code(c->human_code, "10.0.0.9");
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error().code, Errc::kPermission);
  auto wait = store.retry_after("10.0.0.9");
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 900s);
  // Other clients are not affected.
  EXPECT_TRUE(store.find_by_human_code(c->human_code, "10.0.0.1"));
  clock.advance(901s);
  EXPECT_FALSE(store.retry_after("10.0.0.9"));
  EXPECT_TRUE(store.find_by_human_code(c->human_code, "10.0.0.9"));
}

TEST_F(ClaimsTest, MalformedHumanCodeIsNotCountedAsGuess) {
  for (int i = 0; i < 10; ++i) {
    auto r = store.find_by_human_code("O0O0", "10.0.0.2");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  }
  EXPECT_FALSE(store.retry_after("10.0.0.2"));
}

TEST_F(ClaimsTest, FailuresSpreadOverTimeDoNotLock) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store.find_by_human_code("22222222", "k").error().code, Errc::kNotFound);
    clock.advance(200s);  // 4 failures per 600 s window at most
  }
  EXPECT_FALSE(store.retry_after("k"));
}

// Issue 13: every wrong code used to upsert a row of invoice_code_guess and commit it
// (BEGIN IMMEDIATE + fsync on the io thread that also decides barriers), one row per client
// key for ever. A flood of distinct client keys (IPv4 addresses, IPv6 /64s) must neither
// commit nor grow the database.
TEST_F(ClaimsTest, AFloodOfDistinctClientKeysNeitherCommitsNorGrowsTheDatabase) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  ASSERT_TRUE(c);
  const std::string wrong = c->human_code == "22222222" ? "33333333" : "22222222";
  auto page_count = [&] {
    auto st = db.prepare("PRAGMA page_count").value();
    EXPECT_TRUE(st.step().value());
    return st.column_int64(0);
  };
  const std::int64_t pages = page_count();
  int commits = 0;
  sqlite3_commit_hook(
      db.raw(),
      [](void* n) {
        ++*static_cast<int*>(n);
        return 0;
      },
      &commits);
  constexpr int kClients = 100'000;
  for (int i = 0; i < kClients; ++i) {
    char key[64];
    if (i % 2 == 0) {
      std::snprintf(key, sizeof key, "10.%d.%d.%d", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    } else {
      std::snprintf(key, sizeof key, "2001:db8:%x:%x::/64", (i >> 16) & 0xffff, i & 0xffff);
    }
    auto miss = store.find_by_human_code(wrong, key);
    ASSERT_FALSE(miss);
    ASSERT_EQ(miss.error().code, Errc::kNotFound) << key;
    ASSERT_EQ(commits, 0) << "the wrong code from client " << i << " (" << key
                          << ") committed a write transaction";
  }
  // The store stays bounded, and the limit still holds for the next guesser.
  EXPECT_LE(store.TEST_guess_limit().TEST_tracked(), store.policy().guess_max_clients);
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(store.find_by_human_code(wrong, "2001:db8:ffff:1::/64").error().code,
              Errc::kNotFound);
  }
  EXPECT_EQ(store.find_by_human_code(c->human_code, "2001:db8:ffff:1::/64").error().code,
            Errc::kPermission);
  EXPECT_EQ(store.retry_after("2001:db8:ffff:1::/64"), 900s);
  EXPECT_EQ(commits, 0);
  sqlite3_commit_hook(db.raw(), nullptr, nullptr);
  EXPECT_EQ(page_count(), pages) << "the database grew under a flood of wrong codes";
}

// Issue 13: the counters' table is dropped by a schema step of its own, so a database
// that an earlier release let fill with guess rows gets that space back on upgrade.
TEST_F(ClaimsTest, UpgradeDropsTheOldGuessTableAndItsRows) {
  const auto steps = testing::claims_schema();
  auto old = Database::open(dir.path() / "old.db");
  ASSERT_TRUE(old);
  // The release before issue 13: the ledger's steps and the invoice module's first.
  const std::size_t before = steps.size() - (invoice_schema_steps().size() - 1);
  ASSERT_TRUE(old->migrate(steps.first(before)));
  ASSERT_TRUE(
      old->exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
                "INSERT INTO invoice_code_guess SELECT '10.0.' || i, 1, 0, 0 FROM n"));
  ASSERT_TRUE(old->migrate(steps));
  EXPECT_EQ(old->user_version().value(), static_cast<int>(steps.size()));
  auto st = old->prepare("SELECT count(*) FROM sqlite_master WHERE name = 'invoice_code_guess'");
  ASSERT_TRUE(st);
  ASSERT_TRUE(st->step().value());
  EXPECT_EQ(st->column_int64(0), 0);
  auto fresh = db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'invoice_code_guess'");
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(fresh->step().value());
  EXPECT_EQ(fresh->column_int64(0), 0);
}

TEST_F(ClaimsTest, LifecycleToIssuedAndRedLetter) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  auto r = store.submit(c->token, company());
  const std::int64_t id = r->invoice.id;
  // Cannot skip ISSUING.
  EXPECT_EQ(store.mark_issued(id, "26337904450900255091", "http://x/1.pdf").error().code,
            Errc::kRejected);
  ASSERT_TRUE(store.mark_issuing(id, "SERIAL1"));
  ASSERT_TRUE(store.mark_issuing(id, "SERIAL1"));  // same acceptance twice: fine
  EXPECT_FALSE(store.mark_issued(id, "2633790445090025509", "http://x/1.pdf"));  // 19 digits
  ASSERT_TRUE(store.mark_issued(id, "26337904450900255091", "http://x/1.pdf"));
  ASSERT_TRUE(store.mark_issued(id, "26337904450900255091", "http://x/1.pdf"));  // duplicate
  auto issued = store.get_invoice(id);
  EXPECT_EQ(issued->state, InvoiceState::kIssued);
  EXPECT_TRUE(issued->issued_at);
  EXPECT_EQ(store.mark_failed(id, "late failure").error().code, Errc::kRejected);

  auto red = store.request_red_letter(id, RedLetterReason::kReturned);
  ASSERT_TRUE(red) << red.error().to_string();
  EXPECT_EQ(red->kind, InvoiceKind::kRed);
  EXPECT_EQ(red->original_id, id);
  EXPECT_EQ(red->totals.incl, *Money::parse("-19.19"));
  EXPECT_EQ(red->totals.tax, *Money::parse("-0.56"));
  EXPECT_NE(red->order_no, issued->order_no);
  auto red_again = store.request_red_letter(id, RedLetterReason::kReturned);
  EXPECT_EQ(red_again->id, red->id);
  ASSERT_TRUE(store.mark_issuing(red->id, "SERIAL2"));
  ASSERT_TRUE(store.mark_issued(red->id, "26337904450900255092", "http://x/2.pdf"));
  EXPECT_EQ(store.get_invoice(id)->state, InvoiceState::kReversed);
  // The blue invoice kept its number and amounts.
  EXPECT_EQ(store.get_invoice(id)->invoice_number, "26337904450900255091");
  EXPECT_EQ(store.get_invoice(id)->totals.incl, *Money::parse("19.19"));
}

TEST_F(ClaimsTest, RedLetterOnlyForIssuedBlue) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  auto r = store.submit(c->token, company());
  auto red = store.request_red_letter(r->invoice.id, RedLetterReason::kInvoicingError);
  ASSERT_FALSE(red);
  EXPECT_EQ(red.error().code, Errc::kRejected);
}

TEST_F(ClaimsTest, FailedCanBeRetriedWithSameOrderNo) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  auto r = store.submit(c->token, company());
  ASSERT_TRUE(store.mark_issuing(r->invoice.id, "S"));
  ASSERT_TRUE(store.mark_failed(r->invoice.id, "buyer tax id unknown to the tax bureau"));
  auto failed = store.get_invoice(r->invoice.id);
  EXPECT_EQ(failed->state, InvoiceState::kFailed);
  EXPECT_EQ(failed->fail_reason, "buyer tax id unknown to the tax bureau");
  ASSERT_TRUE(store.retry_failed(r->invoice.id));
  auto retried = store.get_invoice(r->invoice.id);
  EXPECT_EQ(retried->state, InvoiceState::kClaimed);
  EXPECT_EQ(retried->order_no, r->invoice.order_no);
}

TEST_F(ClaimsTest, InvoicesAreFrozenAndNeverDeleted) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  auto r = store.submit(c->token, company());
  EXPECT_FALSE(db.exec("UPDATE invoice_document SET incl_fen = 1"));
  EXPECT_FALSE(db.exec("UPDATE invoice_document SET buyer_title = 'x'"));
  EXPECT_FALSE(db.exec("UPDATE invoice_line SET tax_fen = 0"));
  EXPECT_FALSE(db.exec("DELETE FROM invoice_document"));
  EXPECT_FALSE(db.exec("DELETE FROM invoice_claim"));
  EXPECT_FALSE(db.exec("UPDATE invoice_claim SET invoice_id = NULL"));
  EXPECT_EQ(store.get_invoice(r->invoice.id)->totals.incl, *Money::parse("19.19"));
}

TEST_F(ClaimsTest, DefaultTitleIssuesAutomatically) {
  auto with = store.claim_with_default_title(trip("t1", "19.19", clock, "acct"), company());
  ASSERT_TRUE(with) << with.error().to_string();
  ASSERT_TRUE(with->submitted);
  EXPECT_EQ(with->submitted->invoice.state, InvoiceState::kClaimed);
  EXPECT_EQ(with->claim.invoice_id, with->submitted->invoice.id);
  auto without = store.claim_with_default_title(trip("t2", "5.61", clock, "acct2"), std::nullopt);
  ASSERT_TRUE(without);
  EXPECT_FALSE(without->submitted);
  EXPECT_FALSE(without->claim.invoice_id);
  // A stale default title that no longer validates leaves the claim open.
  Buyer stale = company();
  stale.tax_id = "91110000802100433C";
  auto bad = store.claim_with_default_title(trip("t3", "5.61", clock, "acct3"), stale);
  ASSERT_TRUE(bad);
  EXPECT_FALSE(bad->submitted);
}

TEST_F(ClaimsTest, RefundVoidsUnclaimedAndReversesIssued) {
  auto c1 = store.create_claim(trip("t1", "19.19", clock));
  auto none = store.on_refund("t1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto late = store.submit(c1->token, person());
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message.find("refunded"), std::string::npos);

  auto c2 = store.create_claim(trip("t2", "5.61", clock));
  auto inv = store.submit(c2->token, person());
  EXPECT_EQ(store.on_refund("t2").error().code, Errc::kBusy);  // still CLAIMED
  ASSERT_TRUE(store.mark_issuing(inv->invoice.id, "S"));
  ASSERT_TRUE(store.mark_issued(inv->invoice.id, "26337904450900255091", "u"));
  auto red = store.on_refund("t2");
  ASSERT_TRUE(red);
  ASSERT_TRUE(*red);
  EXPECT_EQ((*red)->totals.incl, *Money::parse("-5.61"));
}

TEST_F(ClaimsTest, IssueHookRunsInTheSameCommit) {
  db.exec("CREATE TABLE fake_outbox(order_no TEXT PRIMARY KEY)").value();
  std::vector<std::int64_t> seen;
  bool refuse = false;
  store.set_issue_hook([&](Transaction& txn, const InvoiceRecord& inv) -> Status {
    if (refuse) {
      return fail(Errc::kQueueFull, "outbox full");
    }
    // Like the outbox: a duplicate idempotency key (order_no) is not an error.
    auto st = txn.db().prepare("INSERT OR IGNORE INTO fake_outbox VALUES (?)");
    if (!st) {
      return std::unexpected(st.error());
    }
    st->bind(1, inv.order_no);
    seen.push_back(inv.id);
    return st->run();
  });
  auto c1 = store.create_claim(trip("t1", "19.19", clock));
  auto r1 = store.submit(c1->token, company());
  ASSERT_TRUE(r1);
  EXPECT_EQ(seen, std::vector<std::int64_t>{r1->invoice.id});
  // A refusing hook rolls the claim back: no invoice without its queued request.
  refuse = true;
  auto c2 = store.create_claim(trip("t2", "5.61", clock));
  auto r2 = store.submit(c2->token, company());
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, Errc::kQueueFull);
  EXPECT_FALSE(store.find_by_transaction("t2")->invoice_id);
  auto api = handle_claim_api(store, "POST", "/api/v1/claims/" + c2->token,
                              R"({"kind":"person","phone":"13800138000"})", "ip");
  EXPECT_EQ(api.status, 503);
  refuse = false;
  // Red letter and operator retry enqueue too.
  ASSERT_TRUE(store.mark_issuing(r1->invoice.id, "S"));
  ASSERT_TRUE(store.mark_issued(r1->invoice.id, "26350000000000000001", "u"));
  auto red = store.request_red_letter(r1->invoice.id, RedLetterReason::kReturned);
  ASSERT_TRUE(red);
  EXPECT_EQ(seen.back(), red->id);
  ASSERT_TRUE(store.mark_failed(red->id, "x"));
  ASSERT_TRUE(store.retry_failed(red->id));
  EXPECT_EQ(seen.size(), 3u);
  auto rows = db.prepare("SELECT count(*) FROM fake_outbox").value();
  ASSERT_TRUE(rows.step().value());
  EXPECT_EQ(rows.column_int64(0), 2);  // blue and red; the retry reuses the red order_no
}

TEST_F(ClaimsTest, SurvivesReopen) {
  auto c = store.create_claim(trip("t1", "19.19", clock));
  auto r = store.submit(c->token, company());
  Database db2 = testing::open_migrated(dir.path() / "gw.db");
  ClaimStore store2(db2, section, clock);
  auto again = store2.find_by_token(c->token);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->invoice_id, r->invoice.id);
  auto claimed = store2.invoices_in_state(InvoiceState::kClaimed);
  ASSERT_TRUE(claimed);
  EXPECT_EQ(*claimed, std::vector<std::int64_t>{r->invoice.id});
}

}  // namespace
}  // namespace lanegate::invoice
