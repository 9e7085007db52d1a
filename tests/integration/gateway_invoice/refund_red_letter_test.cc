// A refund of invoiced money: the invoice uplink (worker thread, own connection, real
// HTTPS to the invoicing sandbox) issues the blue invoice, then the red letter the refund
// asked for; the blue invoice ends REVERSED and the ledger says invoice_issued, then
// invoice_reversed. Also when the refund comes while the blue invoice is still being
// issued (queued behind it).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/clock.h"
#include "core/ledger.h"
#include "core/sqlite.h"
#include "gateway/daemon.h"
#include "gateway/invoice_uplink.h"
#include "gateway/settlement.h"
#include "gateway/store.h"
#include "invoice/claims.h"
#include "invoice/platform.h"
#include "offline_queue/drainer.h"
#include "offline_queue/queue.h"
#include "sim/invoicing_sandbox.h"

namespace lanegate::gateway {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kSeller = "91350100M000100Y43";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class RefundRedLetterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-red-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    // A certificate for 127.0.0.1 and credentials, as the demo makes them.
    const std::string cmd = std::string(LANEGATE_SOURCE_DIR) + "/scripts/make-demo-pki " +
                            (dir_ / "pki").string() + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    sim::InvoicingSandboxOptions o;
    o.db_file = dir_ / "sandbox.db";
    o.tls_cert_file = dir_ / "pki" / "server.pem";
    o.tls_key_file = dir_ / "pki" / "server.key";
    o.app_secret = slurp(dir_ / "pki" / "invoicing.secret");
    o.access_token = slurp(dir_ / "pki" / "invoicing.token");
    o.seller_tax_id = kSeller;
    sandbox_ = sim::InvoicingSandbox::start(o).value();

    section_.enabled = true;
    section_.base_url = sandbox_->base_url();
    section_.app_key = o.app_key;
    section_.app_secret_file = dir_ / "pki" / "invoicing.secret";
    section_.access_token_file = dir_ / "pki" / "invoicing.token";
    section_.ca_file = dir_ / "pki" / "ca.pem";
    section_.seller_name = "Red letter lot";
    section_.seller_tax_id = kSeller;
    section_.clerk = "测试开票员";
    section_.parking = {true, "广东省深圳市福田区", "深南大道1000号", false, "", 2};

    const fs::path file = dir_ / "lanegate.db";
    db_.emplace(Database::open(file).value());
    ASSERT_TRUE(db_->migrate(database_schema()));
    store_.emplace(Store::open(*db_, clock_).value());
    outbox_.emplace(queue::Outbox::open(*db_, limits_, clock_).value());
    claims_.emplace(*db_, section_, clock_);
    wire_invoicing(*store_, *claims_, *outbox_, UtcOffset{480});
    auto platform = invoice::make_platform(section_, clock_);
    ASSERT_TRUE(platform) << platform.error().to_string();
    uplink_ = std::make_unique<InvoiceUplink>(io_, section_, Database::open(file).value(),
                                              std::move(*platform), *claims_, clock_);
    drainer_ = std::make_unique<queue::Drainer>(
        io_, *outbox_, limits_, clock_,
        [this](const queue::Item& item, queue::Drainer::Completion done) {
          uplink_->sink(item, std::move(done));
        },
        queue::DrainerOptions{.topics = InvoiceUplink::topics()});
    drainer_->start();
  }

  void TearDown() override {
    if (drainer_) drainer_->stop();
    if (uplink_) uplink_->stop();
    io_.restart();
    io_.poll();
    drainer_.reset();
    uplink_.reset();
    claims_.reset();
    outbox_.reset();
    store_.reset();
    db_.reset();
    sandbox_.reset();
    fs::remove_all(dir_);
  }

  // Runs the io loop until `done` holds (bounded: real HTTPS round trips, real waits).
  bool run_until(const std::function<bool()>& done, std::chrono::seconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      io_.restart();
      io_.run_for(100ms);
    }
    return done();
  }

  Status commit(const std::function<Status(Transaction&)>& work) {
    auto txn = db_->begin();
    if (!txn) return std::unexpected(txn.error());
    if (auto s = work(*txn); !s) return s;
    return txn->commit();
  }

  std::int64_t settle_and_claim(const std::string& out) {
    TxRecord t;
    t.out_trade_no = out;
    t.kind = TxKind::kParking;
    t.lane = "exit-1";
    t.plate = "粤B12345";
    t.plate_colour = "BLUE";
    t.amount = Money::from_fen(1200);
    t.detail = R"({"entry_time":"2026-11-22T08:12:00+08:00","exit_time":"2026-11-22T09:40:00+08:00"})";
    EXPECT_TRUE(commit([&](Transaction& txn) -> Status {
      if (auto id = store_->insert_transaction(txn, t); !id) return std::unexpected(id.error());
      if (auto s = store_->set_state(txn, out, ChargeState::kSubmitting); !s) return s;
      return store_->set_state(txn, out, ChargeState::kSuccess, "4200000009");
    }));
    auto claim = claims_->find_by_transaction(out).value();
    invoice::Buyer b;
    b.kind = invoice::BuyerKind::kPerson;
    b.email = "driver@example.cn";
    return claims_->submit(claim.token, b).value().invoice.id;
  }

  // A taxi trip of a rider account (so trips can share one invoice), paid by the provider.
  void settle_rider_trip(const std::string& out, std::int64_t fen) {
    TxRecord t;
    t.out_trade_no = out;
    t.kind = TxKind::kTaxi;
    t.lane = "meter-1";
    t.contract_id = "rider-7";
    t.amount = Money::from_fen(fen);
    t.detail = R"({"meter":"m1","boarding":"2026-11-22T08:30","alighting":"2026-11-22T08:52"})";
    EXPECT_TRUE(commit([&](Transaction& txn) -> Status {
      if (auto id = store_->insert_transaction(txn, t); !id) return std::unexpected(id.error());
      if (auto s = store_->set_state(txn, out, ChargeState::kSubmitting); !s) return s;
      return store_->set_state(txn, out, ChargeState::kSuccess, "4200000010");
    }));
  }

  invoice::InvoiceState state_of(std::int64_t id) { return claims_->get_invoice(id).value().state; }

  std::vector<std::string> ledger_kinds() {
    std::vector<std::string> out;
    auto h = ledger::head(*db_).value();
    if (!h) return out;
    const auto records = ledger::read(*db_, ledger::SeqRange{1, h->seq}).value();
    for (const auto& e : records) {
      const std::string k(ledger::kind_name(e.event.kind));
      if (k.starts_with("invoice_")) out.push_back(k);
    }
    return out;
  }

  fs::path dir_;
  const SystemClock& clock_ =
      SystemClock::instance();  // certificates and the sandbox's window are real time
  config::QueueLimits limits_;
  config::InvoicingSection section_;
  std::unique_ptr<sim::InvoicingSandbox> sandbox_;
  boost::asio::io_context io_;
  std::optional<Database> db_;
  std::optional<Store> store_;
  std::optional<queue::Outbox> outbox_;
  std::optional<invoice::ClaimStore> claims_;
  std::unique_ptr<InvoiceUplink> uplink_;
  std::unique_ptr<queue::Drainer> drainer_;
};

TEST_F(RefundRedLetterTest, RefundOfAnIssuedInvoiceIsReversedByARedLetter) {
  const std::int64_t blue = settle_and_claim("P-RED-1");
  ASSERT_TRUE(run_until([&] { return state_of(blue) == invoice::InvoiceState::kIssued; }));
  const std::string number = claims_->get_invoice(blue)->invoice_number;
  EXPECT_EQ(number.size(), 20u);

  ASSERT_TRUE(commit(
      [&](Transaction& txn) { return store_->set_state(txn, "P-RED-1", ChargeState::kRefund); }));
  ASSERT_TRUE(run_until([&] { return state_of(blue) == invoice::InvoiceState::kReversed; }));
  EXPECT_EQ(ledger_kinds(), (std::vector<std::string>{"invoice_issued", "invoice_reversed"}));
  auto sb = sandbox_->find(claims_->get_invoice(blue)->order_no);
  ASSERT_TRUE(sb);
  EXPECT_TRUE(sb->reversed);
  // The blue went through requestBillingNew once; the red through its confirmation form
  // (a person: no confirmation needed), which the platform turned into the red itself.
  EXPECT_EQ(sandbox_->issue_requests(), 1);
  auto st = db_->prepare("SELECT id FROM invoice_document WHERE original_id = ?").value();
  st.bind(1, blue);
  ASSERT_TRUE(st.step().value());
  const auto red = claims_->get_invoice(st.column_int64(0));
  ASSERT_TRUE(red);
  EXPECT_TRUE(sandbox_->find_red_confirm(claims_->red_confirmation(red->id)->bill_id)->issued);
  EXPECT_EQ(red->original_id, blue);
  EXPECT_EQ(red->state, invoice::InvoiceState::kIssued);
  EXPECT_EQ(claims_->red_confirmation(red->id)->state, invoice::RedConfirmState::kUsed);
  EXPECT_EQ(claims_->red_confirmation(red->id)->bill_status, "01");
}

TEST_F(RefundRedLetterTest, RefundWhileIssuingWaitsForTheBlueInvoiceThenReversesIt) {
  const std::int64_t blue = settle_and_claim("P-RED-2");
  // Refunded before the drain even started: the blue invoice is CLAIMED.
  ASSERT_TRUE(commit(
      [&](Transaction& txn) { return store_->set_state(txn, "P-RED-2", ChargeState::kRefund); }));
  EXPECT_EQ(state_of(blue), invoice::InvoiceState::kClaimed);
  ASSERT_TRUE(run_until([&] { return state_of(blue) == invoice::InvoiceState::kReversed; }));
  EXPECT_EQ(ledger_kinds(), (std::vector<std::string>{"invoice_issued", "invoice_reversed"}));
  // Nothing left behind. The red letter's item is acknowledged on the io thread just after
  // the worker committed the reversal, so it may still be leased at the moment above.
  ASSERT_TRUE(run_until([&] {
    auto q = outbox_->stats().value();
    return q.pending + q.leased + q.parked == 0;
  }));
}

// Spec: "for a partial refund, reverse the whole invoice and issue a new blue one for the
// amount kept". A rider's two trips on one invoice; one is refunded. Through the outbox and
// the platform: the invoice is reversed, then the other trip is invoiced again on its own,
// and the ledger tells the story in that order.
TEST_F(RefundRedLetterTest, RefundOfOneTripOfAMergedInvoiceReissuesTheOther) {
  settle_rider_trip("T-A", 1919);
  settle_rider_trip("T-B", 3000);
  invoice::Buyer b;
  b.kind = invoice::BuyerKind::kPerson;
  b.email = "rider@example.cn";
  const std::vector<std::string> both = {"T-A", "T-B"};
  const std::int64_t merged = claims_->submit_merged("rider-7", both, b).value().invoice.id;
  ASSERT_TRUE(run_until([&] { return state_of(merged) == invoice::InvoiceState::kIssued; }));

  ASSERT_TRUE(commit([&](Transaction& txn) { return store_->set_state(txn, "T-A", ChargeState::kRefund); }));
  const std::int64_t claim_invoice = *claims_->find_by_transaction("T-B")->invoice_id;
  ASSERT_TRUE(run_until([&] {
    auto now = claims_->current_invoice(claim_invoice);
    return now && now->id != merged && now->state == invoice::InvoiceState::kIssued;
  }));
  EXPECT_EQ(state_of(merged), invoice::InvoiceState::kReversed);
  const auto kept = claims_->current_invoice(claim_invoice).value();
  ASSERT_EQ(kept.lines.size(), 1u);
  EXPECT_EQ(kept.lines[0].transaction_id, "T-B");
  EXPECT_EQ(kept.totals.incl, Money::from_fen(3000));
  EXPECT_EQ(sandbox_->find(kept.order_no)->incl_fen, 3000);
  EXPECT_EQ(ledger_kinds(),
            (std::vector<std::string>{"invoice_issued", "invoice_reversed", "invoice_issued"}));
  ASSERT_TRUE(run_until([&] {
    auto q = outbox_->stats().value();
    return q.pending + q.leased + q.parked == 0;
  }));
}

}  // namespace
}  // namespace lanegate::gateway
