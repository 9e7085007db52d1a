// The taxi rider charge (unconfirmed call, modelled on parking) client <-> sandbox over
// HTTPS: accepted then settled, overdue rider fails, unknown rider refused, query by the
// vehicle transactions path, same out_trade_no returns the same transaction, and a
// merchant without the TAXI product gets NO_AUTH.
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <fstream>

#include "core/sqlite.h"
#include "gateway/daemon.h"
#include "gateway/site.h"
#include "gateway/store.h"
#include "gateway/uplink.h"
#include "offline_queue/queue.h"
#include "provider_fixture.h"

namespace provider_test {
namespace {

using lanegate::Money;
using namespace lanegate::gateway;

class TaxiChargeTest : public ProviderFixture {
 protected:
  void SetUp() override {}  // the sandbox starts with the seed each test chooses

  void start_with_products(const std::string& products) {
    std::ifstream in(std::filesystem::path(LANEGATE_SOURCE_DIR) / "sim/seed/provider-demo.json");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string seed = ss.str();
    const std::string from = "\"products\": \"PARKING,HIGHWAY\"";
    const auto at = seed.find(from);
    ASSERT_NE(at, std::string::npos) << "demo seed layout changed";
    seed.replace(at, from.size(), "\"products\": \"" + products + "\"");
    // The PKI paths in the seed are relative to the PKI dir, so the copy works as is.
    const auto seed_file = dir_.path() / "seed.json";
    std::ofstream(seed_file) << seed;
    lanegate::sim::ProviderSandboxOptions o;
    o.pki_dir = demo_pki();
    o.seed_file = seed_file;
    o.db_file = dir_.path() / "sandbox.db";
    o.time_factor = 0.01;
    auto s = lanegate::sim::ProviderSandbox::start(o);
    ASSERT_TRUE(s) << s.error().to_string();
    sandbox_ = std::move(*s);
  }

  ChargeRequest ride(const std::string& no, const std::string& rider, std::int64_t fen) {
    ChargeRequest r;
    r.product = Product::kTaxi;
    r.out_trade_no = no;
    r.description = "出租车费 test";
    r.amount = Money::from_fen(fen);
    r.taxi.rider_openid = rider;
    r.taxi.plate_number = "B12345";
    r.taxi.start_time = clock_.now() - std::chrono::minutes(25);
    r.taxi.end_time = clock_.now();
    r.taxi.distance_m = 8200;
    r.taxi.trip_number = 7;
    r.taxi.device_id = "meter-1";
    return r;
  }
};

TEST_F(TaxiChargeTest, RiderChargeIsAcceptedThenSucceedsAndIsFoundByQuery) {
  start_with_products("PARKING,HIGHWAY,TAXI");
  auto c = client();
  auto t = c->charge(ride("gw1T2611220930000007", kOpenid, 2350), ChargeAttempt::kFirst);
  ASSERT_TRUE(t) << t.error().error.to_string();
  EXPECT_EQ(t->state, TradeState::kAccepted);
  EXPECT_EQ(t->product, Product::kTaxi);
  EXPECT_EQ(t->amount, Money::from_fen(2350));
  EXPECT_TRUE(wait_for_state(*c, "gw1T2611220930000007", TradeState::kSuccess, Product::kTaxi));
  // The same out_trade_no again: the same transaction, never a second one.
  auto again = c->charge(ride("gw1T2611220930000007", kOpenid, 2350), ChargeAttempt::kFirst);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->transaction_id, t->transaction_id);
  auto list = sandbox_->transactions();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].product, "TAXI");
  EXPECT_EQ((*list)[0].openid, kOpenid);
}

TEST_F(TaxiChargeTest, OverdueRiderEndsInPayFailAndUnknownRiderIsRefused) {
  start_with_products("PARKING,HIGHWAY,TAXI");
  auto c = client();
  ASSERT_TRUE(c->charge(ride("gw1T0001", "oLANEGATEdemo0003overdue", 900), ChargeAttempt::kFirst));
  EXPECT_TRUE(wait_for_state(*c, "gw1T0001", TradeState::kPayFail, Product::kTaxi));
  auto refused = c->charge(ride("gw1T0002", "oNOBODY000000000", 900), ChargeAttempt::kFirst);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().http_status, 400);
  EXPECT_EQ(refused.error().outcome, Outcome::kPark);
}

TEST_F(TaxiChargeTest, MerchantWithoutTheTaxiProductGetsNoAuth) {
  start_with_products("PARKING,HIGHWAY");
  auto c = client();
  auto r = c->charge(ride("gw1T0003", kOpenid, 900), ChargeAttempt::kFirst);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_EQ(r.error().provider_code, "NO_AUTH");
}

// The whole way of a rider's fare as the taxi lane records it: a RIDER transaction and its
// outbox charge item (the payload the site writes) go out through the real Uplink as a TAXI
// charge on the rider's account, and settle; the sandbox holds exactly one TAXI transaction
// of the rider with the fare.
TEST_F(TaxiChargeTest, TheUplinkSendsARecordedRiderFareAsATaxiChargeOnTheRidersAccount) {
  start_with_products("PARKING,HIGHWAY,TAXI");
  auto provider = client();
  lanegate::config::Config cfg;
  cfg.gateway.id = "gw1";
  cfg.gateway.site_name = "Taxi test";
  auto db = lanegate::Database::open(dir_.path() / "lanegate.db");
  ASSERT_TRUE(db);
  ASSERT_TRUE(db->migrate(database_schema()));
  auto store = Store::open(*db, clock_);
  ASSERT_TRUE(store);
  auto outbox = lanegate::queue::Outbox::open(*db, cfg.queue, clock_);
  ASSERT_TRUE(outbox);

  const std::string no = "gw1T2611221000000011";
  const auto end = clock_.now();
  const auto start = end - std::chrono::minutes(25);
  {
    auto txn = db->begin();
    ASSERT_TRUE(txn);
    // The order as the taxi lane builds it, recorded through the charge's one home (the row
    // and the outbox payload come from the same order), decided offline as the lane does.
    ChargeOrder order;
    order.out_trade_no = no;
    order.kind = TxKind::kTaxi;
    order.lane = "taxi-1";
    order.plate = "粤B12345";
    order.amount = Money::from_fen(2350);
    order.contract_id = kOpenid;  // the rider's account, as the taxi lane stores it
    order.description = "出租车费 test";
    order.device_id = "meter-taxi-1";
    order.start_time = start;
    order.end_time = end;
    order.trip_number = 11;
    order.distance_m = 8200;
    ChargeBook book(*store, *outbox, clock_, MerchantIds{});
    ASSERT_TRUE(book.record(*txn, order, DecisionKind::kPassOffline, "offline_within_limits", true, "rider", "{}"));
    ASSERT_TRUE(txn->commit());
  }

  boost::asio::io_context io;
  Uplink uplink(io, cfg, *store, *outbox, *provider, clock_);
  uplink.start();
  ChargeState state = ChargeState::kRecorded;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (state != ChargeState::kSuccess && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(200));
    io.restart();
    auto tx = store->find_transaction(no);
    ASSERT_TRUE(tx && *tx);
    state = (*tx)->state;
  }
  uplink.stop();
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(state, ChargeState::kSuccess) << to_string(state);
  auto list = sandbox_->transactions();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].product, "TAXI");
  EXPECT_EQ((*list)[0].openid, kOpenid);
  EXPECT_EQ((*list)[0].amount_fen, 2350);
  EXPECT_EQ((*list)[0].submissions, 1);
}

}  // namespace
}  // namespace provider_test
