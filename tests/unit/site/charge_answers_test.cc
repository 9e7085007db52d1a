// Issue 13's provider-answer defects, each pinned by a test that failed on the code before
// its fix: answers about other money settling ours (5), notifications out of order or for
// other money (6), a voided charge paid after all and not flagged (7), and an undecided
// charge sent by the drainer with no lane to decide on it (3).
// The real Uplink, a real SQLite store and outbox; the provider is a scripted fake.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/metrics.h"
#include "core/time_format.h"
#include "gateway/charge.h"
#include "gateway/contract_state.h"
#include "gateway/daemon.h"
#include "gateway/uplink.h"

namespace lanegate::gateway {
namespace {

using namespace std::chrono_literals;

class ScriptedProvider final : public PaymentProvider {
 public:
  std::mutex mu;
  ProviderResult<ProviderTransaction> query_answer = std::unexpected(ProviderFailure{});
  int queries = 0;
  int charges = 0;

  ProviderResult<PlateServiceState> find_plate_service(const PlateServiceQuery&) override {
    return std::unexpected(ProviderFailure{});
  }
  ProviderResult<ParkingEntry> create_parking_entry(const ParkingEntryRequest&) override {
    return std::unexpected(ProviderFailure{});
  }
  ProviderResult<ProviderTransaction> charge(const ChargeRequest&, ChargeAttempt) override {
    std::lock_guard l(mu);
    ++charges;
    return query_answer;
  }
  ProviderResult<ProviderTransaction> query_transaction(Product, std::string_view) override {
    std::lock_guard l(mu);
    ++queries;
    return query_answer;
  }
  ProviderResult<TradeBill> download_trade_bill(std::string_view) override {
    return std::unexpected(ProviderFailure{});
  }
  std::map<std::string, ProviderResult<EtcContract>> contracts;  // by contract id
  std::vector<std::string> contract_queries;
  ProviderResult<EtcContract> query_etc_contract(std::string_view id) override {
    std::lock_guard l(mu);
    contract_queries.emplace_back(id);
    auto it = contracts.find(std::string(id));
    if (it == contracts.end()) {
      return std::unexpected(ProviderFailure{Outcome::kNotFound, 404, "NOT_FOUND", Error{}});
    }
    return it->second;
  }
  int calls() {
    std::lock_guard l(mu);
    return queries + charges;
  }
  std::atomic<int> payment_queries{0};
  ProviderResult<Payment> query_payment(PayProduct, std::string_view) override {
    ++payment_queries;
    return std::unexpected(ProviderFailure{Outcome::kNotFound, 404, "ORDER_NOT_EXIST", Error{}});
  }
};

ProviderTransaction answer(std::string out, std::int64_t fen, TradeState state) {
  ProviderTransaction t;
  t.out_trade_no = std::move(out);
  t.amount = Money::from_fen(fen);
  t.state = state;
  t.transaction_id = "4200000000000001";
  return t;
}

constexpr const char* kContract = "wxd678ef4Fwxd678ef4Fwxd678ef4F21";

class ChargeAnswersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "lanegate-answers-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    cfg_.gateway.id = "gw1";
    cfg_.provider.mchid = "1900000001";
    cfg_.provider.sub_mchid = "1900000109";  // answers naming another special merchant
    cfg_.provider.etc.bound_state = "BOUND";
    cfg_.queue.drain_interval_ms = 50;
    db_.emplace(*Database::open(dir_ / "lanegate.db"));
    ASSERT_TRUE(db_->migrate(database_schema()));
    store_.emplace(*Store::open(*db_, clock_));
    outbox_.emplace(*queue::Outbox::open(*db_, cfg_.queue, clock_));
    book_.emplace(*store_, *outbox_, clock_, MerchantIds{cfg_.provider.mchid});
    uplink_ = std::make_unique<Uplink>(io_, cfg_, *store_, *outbox_, provider_, clock_);
  }
  void TearDown() override {
    uplink_.reset();
    book_.reset();
    outbox_.reset();
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A charge of `fen` recorded and decided as the lane does, moved to `state`.
  std::string charge(std::int64_t fen, std::optional<DecisionKind> decision,
                     ChargeState state = ChargeState::kRecorded, TxKind kind = TxKind::kParking) {
    ChargeOrder o;
    o.out_trade_no = "gw1P_" + std::to_string(++n_);
    o.kind = kind;
    if (kind == TxKind::kToll) {
      o.contract_id = kContract;
    }
    o.amount = Money::from_fen(fen);
    o.lane = "out";
    o.plate = "粤B12345";
    auto txn = db_->begin();
    EXPECT_TRUE(txn);
    EXPECT_TRUE(book_->record(*txn, o, decision, "test", false, "provider", "{}"));
    EXPECT_TRUE(txn->commit());
    if (state != ChargeState::kRecorded) {
      EXPECT_TRUE(book_->move_committed(o.out_trade_no, ChargeState::kSubmitting, "", "test"));
    }
    if (state != ChargeState::kRecorded && state != ChargeState::kSubmitting) {
      EXPECT_TRUE(book_->move_committed(o.out_trade_no, state, "", "test"));
    }
    return o.out_trade_no;
  }

  TxRecord tx(const std::string& out) { return **store_->find_transaction(out); }

  // Runs the io thread until `done` or `limit`.
  void run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(20ms);
    }
  }

  Status notify(const ProviderTransaction& t, const std::string& event_id) {
    NotificationEvent ev;
    ev.event_id = event_id;
    ev.event_type = "TRANSACTION." + std::string(trade_state_name(t.state));
    ev.payload = TransactionEvent{t, false};
    auto txn = db_->begin();
    if (!txn) return std::unexpected(txn.error());
    auto s = uplink_->apply_notification(*txn, ev);
    if (!s) {
      txn->rollback();
      return s;
    }
    return txn->commit();
  }

  std::filesystem::path dir_;
  FakeClock clock_{*parse_rfc3339("2026-11-22T10:00:00+08:00")};
  config::Config cfg_;
  boost::asio::io_context io_;
  std::optional<Database> db_;
  std::optional<Store> store_;
  std::optional<queue::Outbox> outbox_;
  std::optional<ChargeBook> book_;
  ScriptedProvider provider_;
  std::unique_ptr<Uplink> uplink_;
  int n_ = 0;
};

// Defect 5: polling an ACCEPTED charge never compared the reply with our money: a 0.01 reply
// for another order moved our 50.00 charge to SUCCESS.
TEST_F(ChargeAnswersTest, AQueryAnswerAboutOtherMoneyNeverSettlesOurs) {
  const std::string out = charge(5000, DecisionKind::kPassOnline, ChargeState::kAccepted);
  provider_.query_answer = answer("gw1P_other", 1, TradeState::kSuccess);
  uplink_->start();
  run_until([&] { return provider_.calls() > 0 && outbox_->stats()->parked == 1; });
  EXPECT_GT(provider_.calls(), 0);
  EXPECT_EQ(tx(out).state, ChargeState::kAccepted) << "another order's answer settled ours";
  EXPECT_EQ(outbox_->stats()->parked, 1) << "an operator must look at it";
  uplink_->stop();
}

TEST_F(ChargeAnswersTest, AQueryAnswerWithAnotherAmountNeverSettlesOurs) {
  const std::string out = charge(5000, DecisionKind::kPassOnline, ChargeState::kAccepted);
  provider_.query_answer = answer(out, 1, TradeState::kSuccess);
  uplink_->start();
  run_until([&] { return outbox_->stats()->parked == 1; });
  EXPECT_EQ(tx(out).state, ChargeState::kAccepted);
  uplink_->stop();
}

// Defect 6: a SUCCESS with a different amount settled our charge (and its invoice claim).
TEST_F(ChargeAnswersTest, ANotificationWithAnotherAmountNeverSettles) {
  const std::string out = charge(5000, DecisionKind::kPassOnline, ChargeState::kAccepted);
  EXPECT_TRUE(notify(answer(out, 1, TradeState::kSuccess), "ev-1"));
  EXPECT_EQ(tx(out).state, ChargeState::kAccepted);
  ProviderTransaction other_merchant = answer(out, 5000, TradeState::kSuccess);
  other_merchant.merchant_id = "1900000999";
  EXPECT_TRUE(notify(other_merchant, "ev-2"));
  EXPECT_EQ(tx(out).state, ChargeState::kAccepted) << "another merchant's answer settled ours";
  EXPECT_TRUE(notify(answer(out, 5000, TradeState::kSuccess), "ev-3"));
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
}

// Defect 6: a REFUND arriving while the charge is still ACCEPTED was answered 204 and lost.
// Now it is refused with a retryable error (the provider sends it again) and applies once
// the charge is known to have succeeded.
TEST_F(ChargeAnswersTest, ARefundBeforeTheSuccessIsNotLost) {
  const std::string out = charge(5000, DecisionKind::kPassOnline, ChargeState::kAccepted);
  auto early = notify(answer(out, 5000, TradeState::kRefund), "ev-r");
  EXPECT_FALSE(early) << "a refund the charge cannot take yet was swallowed";
  EXPECT_EQ(tx(out).state, ChargeState::kAccepted);
  EXPECT_TRUE(notify(answer(out, 5000, TradeState::kSuccess), "ev-s"));
  EXPECT_TRUE(notify(answer(out, 5000, TradeState::kRefund), "ev-r"));  // the resend
  EXPECT_EQ(tx(out).state, ChargeState::kRefund);
}

// Defect 7: VOID -> SUCCESS by notification left a passenger silently charged for a
// passage that was refused. Every path flags it.
TEST_F(ChargeAnswersTest, AVoidedFallbackChargePaidAfterAllIsFlaggedForRefund) {
  const std::string out = charge(5000, DecisionKind::kFallback, ChargeState::kVoid);
  EXPECT_TRUE(notify(answer(out, 5000, TradeState::kSuccess), "ev-late"));
  const TxRecord t = tx(out);
  EXPECT_EQ(t.state, ChargeState::kSuccess) << "the record follows the money";
  EXPECT_TRUE(t.refund_due);
  auto listed = store_->list_transactions(TxFilter{.refund_due_only = true});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].out_trade_no, out);
}

TEST_F(ChargeAnswersTest, AFallenBackChargeFoundByAQueryIsFlaggedForRefund) {
  const std::string out = charge(5000, DecisionKind::kFallback, ChargeState::kUnknown);
  provider_.query_answer = answer(out, 5000, TradeState::kSuccess);
  uplink_->start();
  run_until([&] { return tx(out).state == ChargeState::kSuccess; });
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
  EXPECT_TRUE(tx(out).refund_due);
  uplink_->stop();
}

// Defect 3 (the drainer's side): a charge recorded but never decided (the gateway stopped
// between the two) was sent after the restart although no lane would ever decide on it.
TEST_F(ChargeAnswersTest, AnUndecidedChargeWithNoLaneWaitingIsNeverSentButVoided) {
  const std::string out = charge(5000, std::nullopt);
  provider_.query_answer = answer(out, 5000, TradeState::kAccepted);
  uplink_->start();
  run_until([&] { return tx(out).state == ChargeState::kVoid; });
  uplink_->stop();
  EXPECT_EQ(provider_.calls(), 0) << "an undecided charge went out with no lane to decide";
  EXPECT_EQ(tx(out).state, ChargeState::kVoid);
}

// One that may have left before the stop is found out about, never resent.
TEST_F(ChargeAnswersTest, AnUndecidedChargeThatMayHaveLeftIsOnlyQueried) {
  const std::string out = charge(5000, std::nullopt, ChargeState::kUnknown);
  provider_.query_answer = answer(out, 5000, TradeState::kSuccess);
  uplink_->start();
  run_until([&] { return tx(out).state == ChargeState::kSuccess; });
  uplink_->stop();
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess) << "the record follows the money";
  std::lock_guard l(provider_.mu);
  EXPECT_EQ(provider_.charges, 0) << "it was resent";
  EXPECT_GE(provider_.queries, 1);
}

// Spec "trade_state values": unknown values keep the item pending with an alarm. Before,
// the reply was "unreadable" -- for a fallen-back charge that meant a refusal, and the
// charge was voided although the provider holds it in a state nobody knows.
TEST_F(ChargeAnswersTest, AnUnknownTradeStateNeverVoidsAndParksForAnOperator) {
  const std::string out = charge(5000, DecisionKind::kFallback, ChargeState::kUnknown);
  provider_.query_answer = std::unexpected(ProviderFailure{
      Outcome::kPark, 200, std::string(kUnknownTradeState), Error{Errc::kProtocol, "PROCESSING"}});
  uplink_->start();
  run_until([&] { return outbox_->stats()->parked == 1; });
  uplink_->stop();
  EXPECT_EQ(outbox_->stats()->parked, 1) << "an operator must look at it";
  EXPECT_NE(tx(out).state, ChargeState::kVoid) << "a charge the provider holds was voided";
}

// A partner's answer names its special merchant: another one's answer is other money.
TEST_F(ChargeAnswersTest, AnAnswerForAnotherSpecialMerchantNeverSettles) {
  const std::string out = charge(5000, DecisionKind::kPassOnline, ChargeState::kAccepted);
  ProviderTransaction other = answer(out, 5000, TradeState::kSuccess);
  other.sub_merchant_id = "1900000777";
  EXPECT_TRUE(notify(other, "ev-sub"));
  EXPECT_EQ(tx(out).state, ChargeState::kAccepted) << "another special merchant's answer settled ours";
  other.sub_merchant_id = "1900000109";
  EXPECT_TRUE(notify(other, "ev-sub-2"));
  EXPECT_EQ(tx(out).state, ChargeState::kSuccess);
}

// Spec: the barrier may open once a parking charge is ACCEPTED; ETC treats only SUCCESS as
// paid. A waiting toll lane does not pass a vehicle online on an accepted ETC charge.
TEST_F(ChargeAnswersTest, AnAcceptedEtcChargeIsNotAnOnlinePass) {
  const std::string toll = charge(4500, std::nullopt, ChargeState::kAccepted, TxKind::kToll);
  const std::string parking = charge(500, std::nullopt, ChargeState::kAccepted);
  std::optional<OnlineOutcome> toll_outcome, parking_outcome;
  uplink_->await_charge(toll, 1s, [&](OnlineOutcome o) { toll_outcome = o; });
  uplink_->await_charge(parking, 1s, [&](OnlineOutcome o) { parking_outcome = o; });
  run_until([&] { return toll_outcome && parking_outcome; });
  EXPECT_EQ(toll_outcome, OnlineOutcome::kNoAnswer);
  EXPECT_EQ(parking_outcome, OnlineOutcome::kAccepted);
}

// Spec: "If no callback arrives, poll the contract by id" -- the toll lanes' contracts
// nothing was heard of for contract_silence_s are queried, and an unbound answer stops
// offline passes for the plate; one heard of recently is left alone.
TEST_F(ChargeAnswersTest, SilentContractsAreQueriedAndAnUnboundAnswerBlocksThePlate) {
  (void)charge(4500, DecisionKind::kPassOffline, ChargeState::kRecorded, TxKind::kToll);
  {
    auto txn = db_->begin();
    ASSERT_TRUE(store_->put_contract_state(*txn, "heard-recently", "粤B00001", "BOUND", clock_.now(), "query"));
    ASSERT_TRUE(store_->note_contract_seen(*txn, "heard-recently", "粤B00001"));
    ASSERT_TRUE(txn->commit());
  }
  clock_.advance(std::chrono::hours(1));
  provider_.contracts.emplace(
      kContract, EtcContract{kContract, "粤B12345", "PAUSED", "1900000001", "1900000109", "oSp", "{}"});
  uplink_->check_contracts();
  run_until([&] {
    auto row = store_->find_contract(kContract);
    return row && *row && !(*row)->bind_state.empty();
  });
  {
    std::lock_guard l(provider_.mu);
    EXPECT_EQ(provider_.contract_queries, std::vector<std::string>{kContract})
        << "only the contract nothing was heard of is queried";
  }
  auto row = store_->find_contract(kContract);
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->bind_state, "PAUSED");
  EXPECT_EQ((*row)->source, "query");
  auto binding = store_->get_binding("粤B12345");
  ASSERT_TRUE(binding && *binding);
  EXPECT_EQ((*binding)->state, BindingState::kBlocked) << "an unbound contract still passes offline";
  EXPECT_FALSE(contract_chargeable(**row, contract_rules(cfg_.provider)));
}

}  // namespace
}  // namespace lanegate::gateway

namespace lanegate::gateway {
namespace {

// A link that went down with nothing queued (a taxi-only box after one failed call) used
// to stay down until some charge retried: every later trip went to the meter. Now the
// uplink probes with a read-only query until an answer comes back.
TEST_F(ChargeAnswersTest, ALinkThatWentDownWithNothingQueuedFindsOutItIsBack) {
  uplink_->start();
  uplink_->note_link(false, "connect refused");
  ASSERT_FALSE(uplink_->link_up());
  run_until([&] { return uplink_->link_up(); }, 8s);
  EXPECT_TRUE(uplink_->link_up()) << "no probe brought the link back";
  EXPECT_GE(provider_.payment_queries.load(), 1);
  uplink_->stop();
}

}  // namespace
}  // namespace lanegate::gateway
