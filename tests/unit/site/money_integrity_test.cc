// Issue 13's lane defects, each pinned by a test that failed on the code before its fix:
// a toll record charged to the wrong vehicle, a queued vehicle losing its record, a second
// charge after a crash, colliding taxi numbers, fees from a reset clock, and bindings
// stamped in the future.

#include <set>

#include "site_fixture.h"

namespace lanegate::gateway {
namespace {

class TollTest : public SiteTest {
 protected:
  void SetUp() override {
    SiteTest::SetUp();
    config::TollTariff t;
    t.id = "road";
    t.fares.push_back(config::TollFare{1001, 2002, 1, Money::from_fen(3500)});
    t.fares.push_back(config::TollFare{1003, 2002, 1, Money::from_fen(1200)});
    t.fares.push_back(config::TollFare{1004, 2002, 1, Money::from_fen(800)});
    cfg_.toll_tariffs.push_back(t);
    // The ETC deduction names stations (spec): every priced station has a name.
    cfg_.stations = {{1001, "广州北"}, {1003, "东莞"}, {1004, "虎门"}, {2002, "深圳南"}};
    cfg_.provider.etc.bound_state = "BOUND";
    config::LaneSection toll;
    toll.id = "etc";
    toll.mode = config::LaneMode::kTollExit;
    toll.camera = "cam-etc";
    toll.barrier = "bar-etc";
    toll.display = "led-etc";
    toll.roadside_unit = "rsu-etc";
    toll.tariff = "road";
    toll.station_id = 2002;
    toll.pair_window_ms = 3000;
    cfg_.lanes.push_back(toll);
    config::LaneSection taxi2 = cfg_.lanes[2];
    taxi2.id = "taxi2";
    taxi2.meter = "m2";
    cfg_.lanes.push_back(taxi2);
    rebuild();
  }

  void rebuild() {
    site_.reset();
    site_ = std::make_unique<Site>(io_, cfg_, *store_, *outbox_, clock_, actuator_, *gate_);
  }

  lane::RoadsideRecord unit(const std::string& contract, std::uint32_t entry_station,
                            std::uint16_t seq) {
    lane::RoadsideRecord r;
    r.lane = "etc";
    r.device = "rsu-etc";
    r.sequence = seq;
    r.entry_station = entry_station;
    r.entry_time = clock_.now() - 1h;
    r.vehicle_class = 1;
    r.obu_id = contract;
    r.received_at = clock_.now();
    return r;
  }

  std::map<std::string, TxRecord> by_contract() {
    std::map<std::string, TxRecord> m;
    for (const auto& t : txs()) {
      EXPECT_FALSE(m.contains(t.contract_id)) << "two charges on contract " << t.contract_id;
      m[t.contract_id] = t;
    }
    return m;
  }
};

// Defect 1: vehicle A's unit record was read but not its plate (A went to the attendant);
// 30 minutes later B's plate paired with A's record and B paid A's fare on A's contract.
TEST_F(TollTest, AStaleRoadsideRecordIsNeverChargedToTheNextVehicle) {
  site_->on_event(unit("ETC-A", 1001, 1));
  run();
  clock_.advance(30min);
  site_->on_event(read("etc", "粤B22222"));
  run();
  EXPECT_TRUE(txs().empty()) << "B was charged on A's record";
  // B's own record arrives within the window: B pays B's fare on B's contract.
  clock_.advance(1s);
  site_->on_event(unit("ETC-B", 1003, 2));
  run();
  auto m = by_contract();
  EXPECT_FALSE(m.contains("ETC-A")) << "A's stale record was charged";
  ASSERT_TRUE(m.contains("ETC-B"));
  EXPECT_EQ(m["ETC-B"].plate, "粤B22222");
  EXPECT_EQ(m["ETC-B"].amount, Money::from_fen(1200));
  // The expired record is an event an operator sees.
  EXPECT_NE(site_->lanes_json().find("record_without_plate"), std::string::npos);
}

// A lone plate whose record never comes goes to the attendant once the window passed, and
// the record that comes later does not pair with it.
TEST_F(TollTest, APlateWithoutARecordFallsBackAndALateRecordIsNotPairedWithIt) {
  site_->on_event(read("etc", "粤B33333"));
  run();
  clock_.advance(4s);
  site_->on_event(unit("ETC-LATE", 1003, 3));
  run();
  EXPECT_TRUE(txs().empty());
  EXPECT_EQ(store_->passage_counts()->fallback, 1);
  EXPECT_NE(site_->lanes_json().find("plate_without_record"), std::string::npos);
}

// Defect 2: while the lane was busy a finished pair was split again and the next record
// overwrote the queued one: B was charged on C's contract.
TEST_F(TollTest, QueuedVehiclesKeepTheirOwnRecordsInOrder) {
  gate_->hold = true;
  site_->on_event(read("etc", "粤B10001"));
  site_->on_event(unit("ETC-1", 1001, 1));
  run();
  ASSERT_EQ(gate_->held.size(), 1u) << "vehicle 1 is being decided";
  site_->on_event(read("etc", "粤B10002"));
  site_->on_event(unit("ETC-2", 1003, 2));
  site_->on_event(read("etc", "粤B10003"));
  site_->on_event(unit("ETC-3", 1004, 3));
  run();
  for (int i = 0; i < 3 && !gate_->held.empty(); ++i) {
    gate_->release(OnlineOutcome::kAccepted);
    run();
  }
  auto m = by_contract();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m["ETC-1"].plate, "粤B10001");
  EXPECT_EQ(m["ETC-1"].amount, Money::from_fen(3500));
  EXPECT_EQ(m["ETC-2"].plate, "粤B10002");
  EXPECT_EQ(m["ETC-2"].amount, Money::from_fen(1200));
  EXPECT_EQ(m["ETC-3"].plate, "粤B10003");
  EXPECT_EQ(m["ETC-3"].amount, Money::from_fen(800));
  EXPECT_EQ(actuator_.opened.size(), 3u);
}

// Defect 3: the gateway stopped between recording a toll charge and deciding on it; after
// the restart a fresh read of the same vehicle created a second out_trade_no for the same
// money.
TEST_F(TollTest, ARereadAfterACrashReusesTheUndecidedCharge) {
  gate_->hold = true;
  const auto rec = unit("ETC-C", 1001, 7);
  site_->on_event(read("etc", "粤B44444"));
  site_->on_event(rec);
  run();
  ASSERT_EQ(txs().size(), 1u);
  const std::string first = txs()[0].out_trade_no;
  EXPECT_FALSE(txs()[0].decision) << "recorded, not decided yet";
  // The gateway dies here (its waiting lane with it) and comes back.
  gate_->held.clear();
  rebuild();
  gate_->hold = false;
  gate_->outcome = OnlineOutcome::kAccepted;
  site_->on_event(read("etc", "粤B44444"));
  site_->on_event(rec);
  run();
  auto t = txs();
  ASSERT_EQ(t.size(), 1u) << "the same passage got a second charge";
  EXPECT_EQ(t[0].out_trade_no, first);
  EXPECT_EQ(t[0].decision, DecisionKind::kPassOnline);
}

// Spec "ETC highway deduction": entrance and exit are station names, start_time is the
// entry the roadside unit read and end_time the exit. Before, both were station ids.
TEST_F(TollTest, TheEtcChargeNamesItsStationsAndTheEntryTime) {
  gate_->hold = true;
  const auto rec = unit("wxd678ef4Fwxd678ef4Fwxd678ef4F21", 1001, 9);
  site_->on_event(read("etc", "粤B55555"));
  site_->on_event(rec);
  run();
  auto st = db_->prepare("SELECT payload FROM outbox_item WHERE topic = 'charge'");
  ASSERT_TRUE(st);
  auto row = st->step();
  ASSERT_TRUE(row && *row);
  auto order = decode_charge_order(st->column_text(0));
  ASSERT_TRUE(order) << order.error().to_string();
  const ChargeRequest req = provider_request(*order, "", "");
  EXPECT_EQ(req.product, Product::kHighway);
  EXPECT_EQ(req.contract_id, "wxd678ef4Fwxd678ef4Fwxd678ef4F21");
  EXPECT_EQ(req.highway.entrance, "广州北");
  EXPECT_EQ(req.highway.exit, "深圳南");
  EXPECT_EQ(req.highway.start_time, rec.entry_time);
  EXPECT_LT(req.highway.start_time, req.highway.end_time);
  EXPECT_EQ(req.highway.vehicle_class, 1);
}

// Spec: deduct only while the contract's last seen bind_state is the bound value. A
// contract the provider said was paused is not charged, online or offline: the driver goes
// to the attendant, and nothing is sent.
TEST_F(TollTest, AContractThatIsNotBoundIsNotCharged) {
  {
    auto txn = db_->begin();
    ASSERT_TRUE(store_->put_contract_state(*txn, "ETC-P", "粤B66661", "PAUSED", clock_.now(),
                                           "notification"));
    ASSERT_TRUE(txn->commit());
  }
  site_->on_event(read("etc", "粤B66661"));
  site_->on_event(unit("ETC-P", 1001, 11));
  run();
  EXPECT_TRUE(txs().empty()) << "an unbound contract was charged";
  EXPECT_TRUE(actuator_.opened.empty());
  // Bound again (a later statement): charged as usual.
  {
    auto txn = db_->begin();
    ASSERT_TRUE(store_->put_contract_state(*txn, "ETC-P", "粤B66661", "BOUND", clock_.now() + 1s,
                                           "notification"));
    ASSERT_TRUE(txn->commit());
  }
  clock_.advance(2s);
  site_->on_event(read("etc", "粤B66661"));
  site_->on_event(unit("ETC-P", 1001, 12));
  run();
  EXPECT_EQ(txs().size(), 1u);
}

// Defect 4: two meters on one gateway with the same trip number and boarding minute: the
// second trip was taken as already recorded, acknowledged and never recorded.
TEST_F(TollTest, TwoMetersWithTheSameTripNumberAndMinuteAreBothRecorded) {
  lane::TripRecord a = taxi_trip(7, 2350, 0x00);
  lane::TripRecord b = a;
  b.meter = "m2";
  b.lane = "taxi2";
  b.plate = "B22222";
  b.fare = Money::from_fen(4100);
  site_->on_event(a);
  site_->on_event(b);
  run();
  auto t = txs();
  ASSERT_EQ(t.size(), 2u) << "the second cab's trip was taken for the first";
  std::set<std::int64_t> fares;
  for (const auto& x : t) {
    fares.insert(x.amount.fen());
  }
  EXPECT_EQ(fares, (std::set<std::int64_t>{2350, 4100}));
}

// Defect 4, across a fleet: ids that share their first 8 characters, same meter id, trip
// and minute, under one merchant.
TEST(TaxiTripKey, IsUniqueAcrossGatewaysAndMetersAndFitsTheProvidersAlphabet) {
  const std::string a = taxi_trip_key("taxi-BD12345", "meter", 9, "2026-11-22 09:30");
  const std::string b = taxi_trip_key("taxi-BD12399", "meter", 9, "2026-11-22 09:30");
  const std::string c = taxi_trip_key("taxi-BD12345", "meter2", 9, "2026-11-22 09:30");
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a, taxi_trip_key("taxi-BD12345", "meter", 9, "2026-11-22 09:30"))
      << "a retransmitted trip must map to the same key";
  for (const auto& no : {a, b, c}) {
    EXPECT_LE(no.size() + 3, 32u) << "its orders (…P01, …Q99, …C) must fit the provider's 32";
    for (char ch : no) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
                  ch == '*');
    }
  }
}

// Defect 8: an entry stamped 1970 (a box booted with a reset real-time clock) gave a fee of
// 623,382.00 yuan at the exit. Now the attendant is called and nothing is charged.
TEST_F(SiteTest, AnEntryFromAResetClockIsNotChargedAndCallsTheAttendant) {
  const SystemTime now = clock_.now();
  clock_.set_wall(SystemTime{} + 3600s);  // 1970-01-01 01:00
  arrive("in", "粤B70000");
  clock_.set_wall(now);
  arrive("out", "粤B70000");
  EXPECT_TRUE(txs().empty()) << "a decades-long stay was charged";
  EXPECT_EQ(actuator_.opened.size(), 1u) << "only the entry opened";
  EXPECT_TRUE(gate_->awaited.empty()) << "a charge went to the provider";
  EXPECT_NE(actuator_.texts.back().find("请联系管理员"), std::string::npos);
}

TEST_F(SiteTest, AnEntryStampedAfterTheExitIsNotCharged) {
  const SystemTime now = clock_.now();
  clock_.set_wall(now + 48h);
  arrive("in", "粤B70001");
  clock_.set_wall(now);
  arrive("out", "粤B70001");
  EXPECT_TRUE(txs().empty());
  EXPECT_TRUE(gate_->awaited.empty());
  EXPECT_EQ(actuator_.opened.size(), 1u) << "a stay of minus two days passed as free";
  EXPECT_EQ(store_->passage_counts()->fallback, 1);
}

// Defect 8: nothing above the configured ceiling is sent to the provider without an operator.
TEST_F(SiteTest, AFeeAboveTheCeilingIsNeverSentAndCallsTheAttendant) {
  cfg_.provider.max_charge = Money::from_fen(1000);
  site_->set_config(cfg_);
  arrive("in", "粤B80000");
  clock_.advance(3h);  // 6 units of 3.00 = 18.00 > 10.00
  arrive("out", "粤B80000");
  EXPECT_TRUE(gate_->awaited.empty()) << "the charge went to the provider";
  EXPECT_TRUE(txs().empty());
  EXPECT_EQ(actuator_.opened.size(), 1u);
  auto s = store_->find_open_session("粤B80000");
  ASSERT_TRUE(s);
  EXPECT_TRUE(*s) << "the stay stays open for the attendant";
}

// Defect 9: a binding stamped in the future stayed fresh forever, and newest-wins then
// dropped a later BLOCKED: the decision was pass_offline.
TEST_F(SiteTest, ABindingFromTheFutureNeitherStaysFreshNorHidesALaterBlock) {
  {
    auto txn = db_->begin();
    ASSERT_TRUE(txn);
    ASSERT_TRUE(store_->put_binding(*txn, "粤B90000", BindingState::kNormal, clock_.now() + 24h));
    ASSERT_TRUE(store_->put_binding(*txn, "粤B90000", BindingState::kBlocked, clock_.now()));
    ASSERT_TRUE(txn->commit());
  }
  auto b = store_->get_binding("粤B90000");
  ASSERT_TRUE(b && *b);
  EXPECT_EQ((*b)->state, BindingState::kBlocked) << "the later BLOCKED was dropped";
  EXPECT_LE((*b)->refreshed_at, clock_.now());
  arrive("in", "粤B90000");
  clock_.advance(2h);
  gate_->up = false;
  arrive("out", "粤B90000");
  auto t = txs();
  EXPECT_TRUE(t.empty()) << "a blocked plate passed offline";
  EXPECT_EQ(store_->passage_counts()->pass_offline, 0);
}

// Binding invariant 3: a blocking state beats a NORMAL of about the same age, but a NORMAL
// much newer than a late block wins.
TEST_F(SiteTest, ALateBlockBeatsANormalOfSimilarAgeOnly) {
  auto txn = db_->begin();
  ASSERT_TRUE(txn);
  ASSERT_TRUE(store_->put_binding(*txn, "P1", BindingState::kNormal, clock_.now()));
  ASSERT_TRUE(store_->put_binding(*txn, "P1", BindingState::kPause, clock_.now() - 1min));
  ASSERT_TRUE(store_->put_binding(*txn, "P2", BindingState::kNormal, clock_.now()));
  ASSERT_TRUE(store_->put_binding(*txn, "P2", BindingState::kPause, clock_.now() - 3h));
  ASSERT_TRUE(txn->commit());
  EXPECT_EQ((*store_->get_binding("P1"))->state, BindingState::kPause);
  EXPECT_EQ((*store_->get_binding("P2"))->state, BindingState::kNormal);
}

}  // namespace
}  // namespace lanegate::gateway
