// The lane logic with fake hardware and a fake uplink: what a driver at the barrier
// would notice (does it open, what does the display say), and what the records say.

#include "gateway/site.h"

#include "site_fixture.h"

namespace lanegate::gateway {
namespace {

TEST_F(SiteTest, EntryOpensTheBarrierAfterRecordingTheSessionAndItsUpload) {
  bool committed_first = false;
  actuator_.on_open = [&] {
    auto s = store_->find_open_session("粤B12345");
    auto st = outbox_->stats();
    committed_first = s && *s && st && st->pending == 1;
  };
  arrive("in", "粤B12345");
  EXPECT_EQ(actuator_.opened, std::vector<std::string>{"bar-in"});
  EXPECT_TRUE(committed_first)
      << "the barrier opened before the session and its upload were committed";
}

TEST_F(SiteTest, ShortStayIsFreeAndOpens) {
  arrive("in", "粤B12345");
  clock_.advance(10min);
  arrive("out", "粤B12345");
  EXPECT_EQ(actuator_.opened.size(), 2u);
  EXPECT_TRUE(txs().empty()) << "a free stay moves no money";
  auto session = store_->find_open_session("粤B12345");
  EXPECT_FALSE(*session) << "the stay is closed";
}

TEST_F(SiteTest, OnlineAcceptedChargeOpensAfterTheDecisionIsCommitted) {
  arrive("in", "粤B12345");
  clock_.advance(2h);
  std::string decision_at_open;
  actuator_.on_open = [&] {
    auto t = txs();
    decision_at_open = t.empty() ? "" : std::string(decision_text(t[0].decision));
  };
  arrive("out", "粤B12345");
  ASSERT_EQ(actuator_.opened.size(), 2u);
  EXPECT_EQ(decision_at_open, "pass_online");
  auto t = txs();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].amount, Money::from_fen(4 * 300));
  EXPECT_EQ(t[0].state, ChargeState::kRecorded) << "the uplink, not the site, moves the charge on";
  EXPECT_EQ(gate_->awaited.size(), 1u);
  EXPECT_EQ(gate_->awaited[0], t[0].out_trade_no);
  // The ledger holds the decision with the full plate and the amount.
  auto entries = ledger::find_by_out_trade_no(*db_, t[0].out_trade_no);
  ASSERT_TRUE(entries);
  ASSERT_FALSE(entries->empty());
  EXPECT_EQ(entries->back().event.state, "pass_online");
  EXPECT_EQ(entries->back().event.plate, "粤B12345");
  EXPECT_EQ(entries->back().event.amount, Money::from_fen(1200));
}

TEST_F(SiteTest, RefusedChargeFallsBackWithoutOpening) {
  arrive("in", "粤B12345");
  clock_.advance(2h);
  gate_->outcome = OnlineOutcome::kRefused;
  arrive("out", "粤B12345");
  EXPECT_EQ(actuator_.opened.size(), 1u) << "only the entry barrier opened";
  ASSERT_FALSE(actuator_.texts.empty());
  EXPECT_NE(actuator_.texts.back().find("请扫码缴费"), std::string::npos);
  EXPECT_TRUE(*store_->find_open_session("粤B12345")) << "the stay stays open until paid";
}

TEST_F(SiteTest, OfflineWithAFreshNormalBindingPassesAndQueuesTheCharge) {
  arrive("in", "粤B12345");
  {
    auto txn = db_->begin();
    ASSERT_TRUE(store_->put_binding(*txn, "粤B12345", BindingState::kNormal, clock_.now()));
    ASSERT_TRUE(txn->commit());
  }
  clock_.advance(1h);
  gate_->up = false;
  arrive("out", "粤B12345");
  EXPECT_EQ(actuator_.opened.size(), 2u);
  auto t = txs();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].decision, DecisionKind::kPassOffline);
  EXPECT_TRUE(t[0].offline);
  EXPECT_TRUE(gate_->awaited.empty()) << "no online wait while the uplink is down";
  auto st = outbox_->stats();
  EXPECT_EQ(st->pending, 2) << "the entry and the charge wait for the uplink";
  EXPECT_EQ(*store_->plate_outstanding("粤B12345"), Money::from_fen(600));
}

TEST_F(SiteTest, OfflineWithoutABindingFallsBackAndRecordsNoCharge) {
  arrive("in", "粤B12345");
  clock_.advance(1h);
  gate_->up = false;
  arrive("out", "粤B12345");
  EXPECT_EQ(actuator_.opened.size(), 1u);
  EXPECT_TRUE(txs().empty()) << "nothing to charge later: the driver pays another way";
  auto counts = store_->passage_counts();
  EXPECT_EQ(counts->fallback, 1);
}

TEST_F(SiteTest, ExitWithoutEntryAsksForTheAttendantByDefault) {
  arrive("out", "粤B99999");
  EXPECT_TRUE(actuator_.opened.empty());
  EXPECT_NE(actuator_.texts.back().find("请联系管理员"), std::string::npos);
}

TEST_F(SiteTest, ExitWithoutEntryChargesTheDailyCapWhenConfiguredSo) {
  cfg_.lanes[1].exit_without_entry = "daily_cap";
  site_->set_config(cfg_);
  arrive("out", "粤B77777");
  ASSERT_EQ(actuator_.opened, std::vector<std::string>{"bar-out"});
  auto t = txs();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].amount, Money::from_fen(3000));
  EXPECT_EQ(t[0].decision, DecisionKind::kPassOnline);
  // The provider needs an entry for the charge: one is queued ahead of it, same key.
  auto items = outbox_->list(queue::ListFilter{});
  ASSERT_TRUE(items);
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ(items->at(0).topic, "parking.entry");
  EXPECT_EQ(items->at(1).topic, "charge");
  EXPECT_EQ(items->at(0).ordering_key, items->at(1).ordering_key);
}

TEST_F(SiteTest, ADatabaseThatCannotCommitSwitchesToAttendantModeAndOpensNothing) {
  // The database refuses every write (as with a full disk or a failing device).
  ASSERT_TRUE(db_->exec("PRAGMA query_only = ON"));
  arrive("in", "粤B12345");
  EXPECT_TRUE(actuator_.opened.empty());
  EXPECT_TRUE(site_->attendant_mode());
  ASSERT_TRUE(db_->exec("PRAGMA query_only = OFF"));
  arrive("in", "粤B12346");
  EXPECT_FALSE(site_->attendant_mode()) << "recovers on the first commit that succeeds";
  EXPECT_EQ(actuator_.opened.size(), 1u);
}

TEST_F(SiteTest, ManualOpenIsRecordedWithWhoAndWhyBeforeTheCommand) {
  bool recorded_first = false;
  actuator_.on_open = [&] {
    auto head = ledger::head(*db_);
    recorded_first = head && *head && (*head)->event.kind == ledger::Kind::kManualOpen;
  };
  auto id = site_->manual_open("out", "alice", "paid cash at the booth");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_TRUE(recorded_first);
  auto head = ledger::head(*db_);
  EXPECT_EQ((*head)->event.actor, "operator:alice");
  EXPECT_NE((*head)->event.detail.find("paid cash"), std::string::npos);
  EXPECT_FALSE(site_->manual_open("out", "alice", ""));
  EXPECT_FALSE(site_->manual_open("nope", "alice", "x"));
}

TEST_F(SiteTest, TaxiTripIsRecordedOnceThenAcknowledgedEvenWhenRetransmitted) {
  lane::TripRecord trip;
  trip.meter = "m1";
  trip.lane = "taxi";
  trip.plate = "B12345";
  trip.fare = Money::from_fen(2350);
  trip.trip_number = 42;
  trip.boarding = lane::CivilTime{2026, 11, 22, 9, 30};
  trip.alighting = lane::CivilTime{2026, 11, 22, 9, 55};
  site_->on_event(trip);
  site_->on_event(trip);  // the meter retransmits: the ack was lost
  run();
  auto t = txs();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].amount, Money::from_fen(2350));
  EXPECT_EQ(t[0].state, ChargeState::kCash);
  EXPECT_EQ(actuator_.acked_trips, (std::vector<std::uint32_t>{42, 42}));
}

TEST_F(SiteTest, ExitWithoutEntryUnderDailyCapOfflinePassesOnlyWithAFreshNormalBinding) {
  cfg_.lanes[1].exit_without_entry = "daily_cap";
  site_->set_config(cfg_);
  gate_->up = false;
  arrive("out", "粤B55555");
  EXPECT_TRUE(actuator_.opened.empty()) << "no binding: the daily cap is not passed offline";
  EXPECT_TRUE(txs().empty());
  {
    auto txn = db_->begin();
    ASSERT_TRUE(store_->put_binding(*txn, "粤B55555", BindingState::kNormal, clock_.now()));
    ASSERT_TRUE(txn->commit());
  }
  cfg_.offline.per_transaction = Money::from_fen(5000);
  arrive("out", "粤B55555");
  ASSERT_EQ(actuator_.opened, std::vector<std::string>{"bar-out"});
  auto t = txs();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].amount, Money::from_fen(3000));
  EXPECT_EQ(t[0].decision, DecisionKind::kPassOffline);
  auto items = outbox_->list(queue::ListFilter{});
  ASSERT_TRUE(items);
  ASSERT_EQ(items->size(), 2u) << "the provider entry is queued ahead of the offline charge";
  EXPECT_EQ(items->at(0).topic, "parking.entry");
  EXPECT_EQ(items->at(1).topic, "charge");
}

TEST(StoreLifecycle, OnlyTheLifecycleArrowsAreAllowed) {
  using S = ChargeState;
  EXPECT_TRUE(allowed_transition(S::kRecorded, S::kSubmitting));
  EXPECT_TRUE(allowed_transition(S::kSubmitting, S::kAccepted));
  EXPECT_TRUE(allowed_transition(S::kSubmitting, S::kUnknown));
  EXPECT_TRUE(allowed_transition(S::kUnknown, S::kSuccess));
  EXPECT_TRUE(allowed_transition(S::kAccepted, S::kPayFail));
  EXPECT_TRUE(allowed_transition(S::kSuccess, S::kRefund));
  EXPECT_TRUE(allowed_transition(S::kPayFail, S::kSuccess)) << "PAY_BACK";
  EXPECT_FALSE(allowed_transition(S::kSuccess, S::kAccepted))
      << "a late ACCEPTED never undoes SUCCESS";
  EXPECT_FALSE(allowed_transition(S::kSuccess, S::kPayFail));
  EXPECT_FALSE(allowed_transition(S::kRecorded, S::kSuccess))
      << "nothing settles before it was sent";
  EXPECT_FALSE(allowed_transition(S::kAccepted, S::kVoid)) << "an accepted charge cannot be voided";
  EXPECT_FALSE(allowed_transition(S::kCash, S::kRefund));
  // A voided charge the provider reports after all: the record follows the money.
  EXPECT_TRUE(allowed_transition(S::kVoid, S::kSuccess));
  EXPECT_FALSE(allowed_transition(S::kVoid, S::kRecorded)) << "a voided charge is never resent";
}

// A charge recorded for a vehicle but never decided (the gateway stopped, or the database
// refused the decision) is reused by the next read of the same vehicle, so the same money
// never gets a second out_trade_no; once the provider refused it and it was voided, the next
// read must record a new charge instead of waiting on a dead one.
TEST_F(SiteTest, AnUndecidedChargeIsReusedUntilItIsVoided) {
  Store::Session session;
  session.lane = "in1";
  session.plate = "粤B12345";
  session.entry_time = clock_.now();
  session.out_parking_no = "E1";
  auto txn = db_->begin();
  ASSERT_TRUE(txn);
  auto sid = store_->open_session(*txn, session);
  ASSERT_TRUE(sid);
  TxRecord tx;
  tx.out_trade_no = "P1";
  tx.lane = "out1";
  tx.plate = "粤B12345";
  tx.amount = Money::from_fen(200);
  tx.session_id = *sid;
  tx.passage_key = "session:" + std::to_string(*sid);
  ASSERT_TRUE(store_->insert_transaction(*txn, tx));
  ASSERT_TRUE(store_->set_state(*txn, "P1", ChargeState::kSubmitting));
  ASSERT_TRUE(txn->commit());

  auto found = store_->find_undecided_charge("session:" + std::to_string(*sid));
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->out_trade_no, "P1");

  auto txn2 = db_->begin();
  ASSERT_TRUE(txn2);
  ASSERT_TRUE(store_->set_state(*txn2, "P1", ChargeState::kVoid));
  ASSERT_TRUE(txn2->commit());
  auto after = store_->find_undecided_charge("session:" + std::to_string(*sid));
  ASSERT_TRUE(after);
  EXPECT_FALSE(*after) << "a voided charge is not waited on again";
}

}  // namespace
}  // namespace lanegate::gateway

// The API's role rules over a real socket: auditors see audit artifacts and metrics
// and nothing else; operators see the lanes; nobody can write the ledger.
#include <httplib.h>

#include <thread>

#include "core/crypto.h"
#include "gateway/api_routes.h"

namespace lanegate::gateway {
namespace {

TEST_F(SiteTest, ApiRolesAuditorsReadAuditArtifactsOnlyAndOperatorsRunLanes) {
  cfg_.gateway.state_dir = dir_;
  cfg_.api.listen_port = 0;
  cfg_.api.tokens = {{"alice", "operator", crypto::sha256_hex("op")},
                     {"bureau", "auditor", crypto::sha256_hex("au")}};
  HttpApi api(io_, cfg_.api);
  add_api_routes(api,
                 ApiServices{&cfg_, &*store_, &*outbox_, site_.get(), nullptr, nullptr, nullptr});
  auto port = api.start();
  ASSERT_TRUE(port);
  io_.restart();
  auto work = boost::asio::make_work_guard(io_);
  std::thread loop([this] { io_.run(); });
  httplib::Client c("127.0.0.1", *port);
  auto get = [&](const char* path, const char* token) {
    auto r = c.Get(path, httplib::Headers{{"Authorization", std::string("Bearer ") + token}});
    return r ? r->status : 0;
  };
  auto post = [&](const char* path, const char* token, const char* body) {
    auto r = c.Post(path, httplib::Headers{{"Authorization", std::string("Bearer ") + token}}, body,
                    "application/json");
    return r ? r->status : 0;
  };
  EXPECT_EQ(get("/api/v1/audit/artifacts", "au"), 200);
  EXPECT_EQ(get("/metrics", "au"), 200);
  EXPECT_EQ(get("/api/v1/status", "au"), 403);
  EXPECT_EQ(get("/api/v1/transactions", "au"), 403);
  EXPECT_EQ(post("/api/v1/lanes/out/open", "au", R"({"reason":"x"})"), 403);
  EXPECT_EQ(get("/api/v1/status", "op"), 200);
  EXPECT_EQ(get("/api/v1/transactions?state=SUCCESS&limit=10", "op"), 200);
  EXPECT_EQ(get("/api/v1/transactions?state=NOPE", "op"), 400);
  EXPECT_EQ(get("/api/v1/transactions?colour=red", "op"), 400) << "unknown filters are refused";
  EXPECT_EQ(post("/api/v1/lanes/out/open", "op", R"({"reason":"paid cash"})"), 200);
  EXPECT_EQ(post("/api/v1/lanes/out/open", "op", R"({"why":"x"})"), 400);
  EXPECT_EQ(post("/api/v1/lanes/nope/open", "op", R"({"reason":"x"})"), 404);
  EXPECT_EQ(get("/api/v1/audit/packages/..%2f..%2fetc/passwd", "au"), 400);
  EXPECT_EQ(get("/api/v1/audit/reports/passwd", "au"), 404);
  boost::asio::post(io_, [&] { api.stop(); });
  work.reset();
  io_.stop();
  loop.join();
}

}  // namespace
}  // namespace lanegate::gateway
