// In-cab payment on a taxi lane (site_taxi.cc): a trip's fare paid by the passenger's
// payment code or a Native QR, else at the meter; the provider's quick-pay rules for
// ambiguous results (never resubmit; query; reverse); a trip paid at most once.
#include <gtest/gtest.h>

#include <deque>

#include "gateway/screen.h"
#include "site_fixture.h"

namespace lanegate::gateway {
namespace {

ProviderFailure failure(Outcome o, int http, std::string code) {
  return ProviderFailure{o, http, std::move(code), Error{Errc::kRejected, "scripted", ""}};
}

// The provider as the taxi lane sees it: scripted codepay answers, orders kept by number.
class ScriptedPay final : public PaymentProvider {
 public:
  std::deque<ProviderResult<Payment>> codepay_answers;  // empty: SUCCESS
  std::map<std::string, PayState> orders;               // what queries find
  std::vector<std::string> codes_seen;                  // auth codes, per codepay call
  std::vector<std::string> codepay_calls, native_calls, reverse_calls, close_calls, query_calls;
  bool close_refused = false;

  Payment payment(const std::string& out, PayState st, Money amount, PayProduct product) const {
    Payment p;
    p.product = product;
    p.out_trade_no = out;
    p.state = st;
    p.amount = amount;
    p.transaction_id = st == PayState::kSuccess ? "4200" + out : "";
    return p;
  }
  std::map<std::string, Money> amounts;

  ProviderResult<Payment> codepay(const CodepayRequest& r) override {
    codepay_calls.push_back(r.out_trade_no);
    codes_seen.push_back(r.auth_code);
    amounts[r.out_trade_no] = r.amount;
    if (codepay_answers.empty()) {
      orders[r.out_trade_no] = PayState::kSuccess;
      return payment(r.out_trade_no, PayState::kSuccess, r.amount, PayProduct::kCodepay);
    }
    auto a = codepay_answers.front();
    codepay_answers.pop_front();
    if (a) orders[r.out_trade_no] = a->state;
    return a;
  }
  bool unreachable = false;  // create_native: no connection
  ProviderResult<std::string> create_native(const NativeRequest& r) override {
    native_calls.push_back(r.out_trade_no);
    if (unreachable) return std::unexpected(failure(Outcome::kRetryLater, 0, ""));
    amounts[r.out_trade_no] = r.amount;
    orders[r.out_trade_no] = PayState::kNotPay;
    return "weixin://wxpay/bizpayurl?pr=" + r.out_trade_no;
  }
  ProviderResult<Payment> query_payment(PayProduct product, std::string_view out) override {
    query_calls.emplace_back(out);
    auto it = orders.find(std::string(out));
    if (it == orders.end()) return std::unexpected(failure(Outcome::kNotFound, 404, "ORDER_NOT_EXIST"));
    return payment(it->first, it->second, amounts[it->first], product);
  }
  ProviderResult<std::monostate> reverse_payment(std::string_view out) override {
    reverse_calls.emplace_back(out);
    orders[std::string(out)] = PayState::kRevoked;
    return std::monostate{};
  }
  ProviderResult<std::monostate> close_payment(PayProduct, std::string_view out) override {
    close_calls.emplace_back(out);
    auto& st = orders[std::string(out)];
    if (close_refused || st == PayState::kSuccess) return std::unexpected(failure(Outcome::kPark, 400, "ORDERPAID"));
    st = PayState::kClosed;
    return std::monostate{};
  }
  // Not used by taxi lanes.
  ProviderResult<PlateServiceState> find_plate_service(const PlateServiceQuery&) override {
    return std::unexpected(failure(Outcome::kPark, 400, "UNUSED"));
  }
  ProviderResult<ParkingEntry> create_parking_entry(const ParkingEntryRequest&) override {
    return std::unexpected(failure(Outcome::kPark, 400, "UNUSED"));
  }
  ProviderResult<ProviderTransaction> charge(const ChargeRequest&, ChargeAttempt) override {
    return std::unexpected(failure(Outcome::kPark, 400, "UNUSED"));
  }
  ProviderResult<ProviderTransaction> query_transaction(Product, std::string_view) override {
    return std::unexpected(failure(Outcome::kPark, 400, "UNUSED"));
  }
  ProviderResult<EtcContract> query_etc_contract(std::string_view) override {
    return std::unexpected(failure(Outcome::kPark, 400, "UNUSED"));
  }
  ProviderResult<TradeBill> download_trade_bill(std::string_view) override {
    return std::unexpected(failure(Outcome::kPark, 400, "UNUSED"));
  }
};

constexpr const char* kCode = "134567890123456789";

class TaxiPayTest : public SiteTest {
 protected:
  void SetUp() override {
    SiteTest::SetUp();
    cfg_.provider.mchid = "1900000001";
    cfg_.provider.appid = "wxdemo";
    cfg_.lanes[2].code_reader = "reader-1";
    cfg_.lanes[2].code_wait_ms = 20'000;
    cfg_.lanes[2].qr_wait_s = 180;
    site_ = std::make_unique<Site>(io_, cfg_, *store_, *outbox_, clock_, actuator_, *gate_);
    gate_->provider = &pay_;
    site_->set_screen(&screens_, [](std::string_view out) -> std::optional<ClaimRef> {
      return ClaimRef{"https://claims.example/claim/" + std::string(out), "ABCD-EFGH"};
    });
  }

  lane::PaymentCode code(std::string c = kCode) {
    lane::PaymentCode r;
    r.lane = "taxi";
    r.reader = "reader-1";
    r.code = std::move(c);
    r.received_at = clock_.now();
    r.received_steady = clock_.steady_now();
    return r;
  }
  void drain() {
    for (int i = 0; i < 8; ++i) run();
  }
  std::string key(std::uint32_t number) { return taxi_trip_key("gw1", "m1", number, "2026-11-22T09:30"); }
  Store::TaxiTrip trip_row(std::uint32_t number) { return **store_->find_trip(key(number)); }
  TxRecord tx(const std::string& out) { return **store_->find_transaction(out); }
  ScreenView::Phase phase() { return screens_.get("taxi")->view.phase; }

  // Runs every `pay` item that is due now, as the uplink's drainer would.
  int run_pay_items() {
    auto items = outbox_->lease(std::vector<std::string>{std::string(kTopicPay)}, 16, 60s);
    EXPECT_TRUE(items);
    int n = 0;
    for (const auto& item : *items) {
      ++n;
      site_->pay_item(item, [this, lease = item.token()](queue::Outcome o) { ASSERT_TRUE(outbox_->apply(lease, o)); });
    }
    drain();
    return n;
  }
  // The lane shows the QR as soon as the trip ends (its timer is a real one).
  void qr_at_once() {
    cfg_.lanes[2].code_wait_ms = 0;
    site_->set_config(cfg_);
  }
  void advance(std::chrono::milliseconds d) {
    clock_.advance(d);
    drain();
  }

  ScriptedPay pay_;
  ScreenBoard screens_;
};

TEST_F(TaxiPayTest, ACodeScannedAfterTheTripPaysTheFareOnceAndTheScreenShowsTheReceipt) {
  site_->on_event(taxi_trip(1, 2350));
  drain();
  EXPECT_EQ(actuator_.acked_trips, (std::vector<std::uint32_t>{1})) << "acknowledged once stored";
  EXPECT_EQ(trip_row(1).state, "OPEN");
  EXPECT_EQ(phase(), ScreenView::Phase::kFare);
  site_->on_event(code());
  drain();
  ASSERT_EQ(pay_.codepay_calls.size(), 1u);
  const std::string out = pay_.codepay_calls[0];
  EXPECT_EQ(out, key(1) + "P01");
  EXPECT_EQ(pay_.amounts[out], Money::from_fen(2350));
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
  EXPECT_EQ(trip_row(1).state, "PAID");
  EXPECT_EQ(trip_row(1).settled_by, out);
  const auto screen = screens_.get("taxi")->view;
  EXPECT_EQ(screen.phase, ScreenView::Phase::kPaid);
  EXPECT_EQ(screen.claim_url, "https://claims.example/claim/" + out);
  // The same code scanned again has no trip to pay: never sent.
  site_->on_event(code());
  drain();
  EXPECT_EQ(pay_.codepay_calls.size(), 1u);
}

TEST_F(TaxiPayTest, ADeclinedCodeTakesNothingAndTheNextCodeGetsANewNumber) {
  pay_.codepay_answers.push_back(std::unexpected(failure(Outcome::kPark, 403, "NOTENOUGH")));
  site_->on_event(taxi_trip(2, 1800));
  site_->on_event(code());
  drain();
  EXPECT_EQ(phase(), ScreenView::Phase::kDeclined);
  EXPECT_EQ(tx(key(2) + "P01").state, ChargeState::kPayFail);
  EXPECT_EQ(trip_row(2).state, "OPEN");
  site_->on_event(code("104567890123456789"));
  drain();
  ASSERT_EQ(pay_.codepay_calls.size(), 2u);
  EXPECT_EQ(pay_.codepay_calls[1], key(2) + "P02");
  EXPECT_EQ(trip_row(2).state, "PAID");
  EXPECT_EQ(trip_row(2).settled_by, key(2) + "P02");
}

TEST_F(TaxiPayTest, AnUnknownResultIsQueriedNeverResubmittedAndPaysWhenTheQueryFindsSuccess) {
  pay_.codepay_answers.push_back(std::unexpected(failure(Outcome::kQueryFirst, 0, "")));
  site_->on_event(taxi_trip(3, 2000));
  site_->on_event(code());
  drain();
  const std::string out = key(3) + "P01";
  EXPECT_EQ(tx(out).state, ChargeState::kUnknown);
  EXPECT_EQ(phase(), ScreenView::Phase::kConfirming);
  // The passenger confirms on the phone; the provider has it paid.
  pay_.orders[out] = PayState::kSuccess;
  pay_.amounts[out] = Money::from_fen(2000);
  advance(5s);
  run_pay_items();
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
  EXPECT_EQ(trip_row(3).state, "PAID");
  EXPECT_EQ(phase(), ScreenView::Phase::kPaid);
  EXPECT_EQ(pay_.codepay_calls.size(), 1u) << "a code is never resubmitted";
  EXPECT_TRUE(pay_.reverse_calls.empty());
}

TEST_F(TaxiPayTest, StillUserPayingAfter30SecondsIsReversedAndTheFareStaysUnpaid) {
  Payment userpaying;
  userpaying.state = PayState::kUserPaying;
  pay_.codepay_answers.push_back(userpaying);
  site_->on_event(taxi_trip(4, 2000));
  site_->on_event(code());
  drain();
  const std::string out = key(4) + "P01";
  EXPECT_EQ(tx(out).state, ChargeState::kUnknown);
  for (int i = 0; i < 7 && pay_.reverse_calls.empty(); ++i) {
    advance(5s);
    run_pay_items();
  }
  EXPECT_GE(pay_.query_calls.size(), 4u) << "queried every few seconds first";
  ASSERT_EQ(pay_.reverse_calls.size(), 1u);
  EXPECT_EQ(pay_.reverse_calls[0], out);
  EXPECT_EQ(tx(out).state, ChargeState::kVoid);
  EXPECT_EQ(trip_row(4).state, "OPEN") << "the fare is still to be paid";
  EXPECT_EQ(phase(), ScreenView::Phase::kDeclined);
  EXPECT_EQ(pay_.codepay_calls.size(), 1u);
}

TEST_F(TaxiPayTest, WithoutACodeTheScreenShowsANativeQrThatTheNotificationSettles) {
  qr_at_once();
  site_->on_event(taxi_trip(5, 3100));
  drain();
  ASSERT_EQ(pay_.native_calls.size(), 1u);
  const std::string out = key(5) + "Q01";
  EXPECT_EQ(pay_.native_calls[0], out);
  const auto shown = screens_.get("taxi")->view;
  EXPECT_EQ(shown.phase, ScreenView::Phase::kQr);
  EXPECT_EQ(shown.qr_text, "weixin://wxpay/bizpayurl?pr=" + out);
  EXPECT_EQ(tx(out).state, ChargeState::kSubmitting) << "waiting for the passenger";
  // TRANSACTION.SUCCESS arrives.
  Payment paid = pay_.payment(out, PayState::kSuccess, Money::from_fen(3100), PayProduct::kNative);
  auto txn = db_->begin();
  ASSERT_TRUE(txn);
  ASSERT_TRUE(site_->apply_payment(*txn, paid, AnswerSource::kNotification));
  ASSERT_TRUE(txn->commit());
  drain();
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
  EXPECT_EQ(trip_row(5).state, "PAID");
  EXPECT_EQ(phase(), ScreenView::Phase::kPaid);
}

TEST_F(TaxiPayTest, APaymentForAnotherAmountNeverSettlesTheTrip) {
  qr_at_once();
  site_->on_event(taxi_trip(6, 3100));
  drain();
  const std::string out = key(6) + "Q01";
  Payment wrong = pay_.payment(out, PayState::kSuccess, Money::from_fen(310), PayProduct::kNative);
  auto txn = db_->begin();
  ASSERT_TRUE(txn);
  ASSERT_TRUE(site_->apply_payment(*txn, wrong, AnswerSource::kNotification));
  ASSERT_TRUE(txn->commit());
  drain();
  EXPECT_EQ(trip_row(6).state, "OPEN");
  EXPECT_NE(tx(out).state, ChargeState::kSuccess);
}

TEST_F(TaxiPayTest, TheNextTripStartClosesTheQrAndALatePaymentIsFlaggedForRefund) {
  qr_at_once();
  site_->on_event(taxi_trip(7, 2500));
  drain();
  const std::string out = key(7) + "Q01";
  ASSERT_EQ(pay_.native_calls.size(), 1u);
  lane::TripStarted started;
  started.meter = "m1";
  started.lane = "taxi";
  site_->on_event(started);
  drain();
  EXPECT_EQ(trip_row(7).state, "METER") << "the passenger paid the driver";
  EXPECT_EQ(tx(key(7) + "C").state, ChargeState::kCash);
  run_pay_items();
  ASSERT_EQ(pay_.close_calls.size(), 1u);
  EXPECT_EQ(tx(out).state, ChargeState::kVoid);
  // A payment that lands after all (the passenger paid the QR just before the close).
  Payment late = pay_.payment(out, PayState::kSuccess, Money::from_fen(2500), PayProduct::kNative);
  auto txn = db_->begin();
  ASSERT_TRUE(txn);
  ASSERT_TRUE(site_->apply_payment(*txn, late, AnswerSource::kNotification));
  ASSERT_TRUE(txn->commit());
  drain();
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
  EXPECT_TRUE(tx(out).refund_due) << "paid twice: flagged for refund";
  EXPECT_EQ(trip_row(7).state, "METER");
}

TEST_F(TaxiPayTest, OfflineTheTripIsPaidAtTheMeterAndACodeIsNeverKeptForLater) {
  gate_->up = false;
  site_->on_event(taxi_trip(8, 1500, 0x00));
  drain();
  EXPECT_EQ(trip_row(8).state, "METER");
  EXPECT_EQ(tx(key(8) + "C").state, ChargeState::kCash);
  const auto shown = screens_.get("taxi")->view;
  EXPECT_EQ(shown.phase, ScreenView::Phase::kOffline);
  EXPECT_FALSE(shown.claim_url.empty()) << "the receipt's claim still works";
  site_->on_event(code());
  drain();
  gate_->up = true;
  advance(60s);
  run_pay_items();
  EXPECT_TRUE(pay_.codepay_calls.empty()) << "nothing is charged later";
  EXPECT_EQ(txs().size(), 1u);
}

TEST_F(TaxiPayTest, WhenTheQrCannotReachTheProviderThePassengerIsToldToPayTheDriverAtOnce) {
  qr_at_once();
  pay_.unreachable = true;
  site_->on_event(taxi_trip(12, 4280, 0x00));
  drain();
  ASSERT_EQ(pay_.native_calls.size(), 1u);
  EXPECT_EQ(trip_row(12).state, "METER");
  EXPECT_EQ(tx(key(12) + "Q01").state, ChargeState::kVoid) << "never created: nothing to close";
  const auto shown = screens_.get("taxi")->view;
  EXPECT_EQ(shown.phase, ScreenView::Phase::kOffline);
  EXPECT_FALSE(shown.claim_url.empty());
}

// Found by the chaos run: a trip whose settlement at the meter met a full disk was forgotten
// by its lane and stayed OPEN until a restart (its QR order queried forever).
TEST_F(TaxiPayTest, ATripWhoseSettlementDidNotCommitIsSettledByTheSweep) {
  qr_at_once();
  site_->recover();  // as lanegated starts: nothing open yet; the sweep runs every 10 s
  site_->on_event(taxi_trip(13, 2500));
  drain();
  ASSERT_EQ(pay_.native_calls.size(), 1u);
  ASSERT_TRUE(db_->exec("PRAGMA query_only = ON"));  // the disk is full
  lane::TripStarted started;
  started.meter = "m1";
  started.lane = "taxi";
  site_->on_event(started);
  drain();
  EXPECT_EQ(trip_row(13).state, "OPEN");
  ASSERT_TRUE(db_->exec("PRAGMA query_only = OFF"));
  io_.restart();
  io_.run_for(11s);  // the next sweep
  drain();
  EXPECT_EQ(trip_row(13).state, "METER");
  EXPECT_EQ(tx(key(13) + "C").state, ChargeState::kCash);
  run_pay_items();
  EXPECT_EQ(pay_.close_calls.size(), 1u) << "its QR order is closed";
}

TEST_F(TaxiPayTest, ACardPaidTripIsNeverOfferedAnElectronicPayment) {
  site_->on_event(taxi_trip(9, 1500, 0x03));
  site_->on_event(code());
  drain();
  EXPECT_EQ(trip_row(9).state, "METER");
  EXPECT_TRUE(pay_.codepay_calls.empty());
  EXPECT_EQ(phase(), ScreenView::Phase::kMeterPaid);
}

TEST_F(TaxiPayTest, ARetransmittedTripIsRecordedOnceAndAcknowledgedAgain) {
  site_->on_event(taxi_trip(10, 1500));
  site_->on_event(taxi_trip(10, 1500));
  drain();
  EXPECT_EQ(actuator_.acked_trips, (std::vector<std::uint32_t>{10, 10}));
  EXPECT_EQ(trip_row(10).state, "OPEN");
  EXPECT_EQ(trip_row(10).attempts, 0);
}

TEST_F(TaxiPayTest, ATripLeftOpenByARestartIsPaidAtTheMeterAndItsCodeOrderReversed) {
  pay_.codepay_answers.push_back(std::unexpected(failure(Outcome::kQueryFirst, 0, "")));
  site_->on_event(taxi_trip(11, 2000));
  site_->on_event(code());
  drain();
  const std::string out = key(11) + "P01";
  // The gateway restarts: the lane's memory is gone.
  site_ = std::make_unique<Site>(io_, cfg_, *store_, *outbox_, clock_, actuator_, *gate_);
  site_->recover();
  EXPECT_EQ(trip_row(11).state, "METER");
  pay_.orders.erase(out);  // the provider never got the request
  advance(20s);
  run_pay_items();
  ASSERT_EQ(pay_.reverse_calls.size(), 1u) << "a code order nobody waits for is reversed after 15 s";
  EXPECT_EQ(tx(out).state, ChargeState::kVoid);
  EXPECT_EQ(pay_.codepay_calls.size(), 1u);
}

}  // namespace
}  // namespace lanegate::gateway
