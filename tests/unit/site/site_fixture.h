#pragma once
// The site's test rig: fake hardware, a fake uplink and a real SQLite store, shared by
// site_test.cc and money_integrity_test.cc.

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <map>

#include "core/ledger.h"
#include "gateway/daemon.h"
#include "gateway/site.h"

namespace lanegate::gateway {

using namespace std::chrono_literals;

class FakeActuator final : public LaneActuator {
 public:
  std::function<void()> on_open;  // runs inside open_barrier (to inspect the DB then)
  std::vector<std::string> opened;
  std::vector<std::string> texts;
  std::vector<std::uint32_t> acked_trips;
  Result<std::uint64_t> open_barrier(std::string_view device) override {
    if (on_open) on_open();
    opened.emplace_back(device);
    return opened.size();
  }
  Status show_text(std::string_view, std::string_view text) override {
    texts.emplace_back(text);
    return {};
  }
  Status ack_trip(std::string_view, std::uint32_t trip, const lane::CivilTime&) override {
    acked_trips.push_back(trip);
    return {};
  }
};

class FakeGate final : public ChargeGate {
 public:
  explicit FakeGate(boost::asio::io_context& io) : io_(io) {}
  bool up = true;
  OnlineOutcome outcome = OnlineOutcome::kAccepted;
  int kicks = 0;
  std::vector<std::string> awaited;
  bool link_up() const override { return up; }
  void kick() override { ++kicks; }
  // hold: answers wait in `held` until the test releases them (a lane busy deciding).
  bool hold = false;
  std::vector<std::function<void(OnlineOutcome)>> held;
  void await_charge(const std::string& no, std::chrono::milliseconds,
                    std::function<void(OnlineOutcome)> done) override {
    awaited.push_back(no);
    if (hold) {
      held.push_back(std::move(done));
      return;
    }
    boost::asio::post(io_, [o = outcome, done = std::move(done)] { done(o); });
  }
  // In-cab payments: calls run against `provider` (null: no provider here).
  PaymentProvider* provider = nullptr;
  std::vector<bool> links;  // what call results said about the link
  bool call_provider(ProviderCall call) override {
    if (provider == nullptr) return false;
    boost::asio::post(io_, [this, call = std::move(call)] { boost::asio::post(io_, call(*provider)); });
    return true;
  }
  void note_link(bool u, const std::string&) override { links.push_back(u); }
  void release(OnlineOutcome o) {
    auto h = std::move(held);
    held.clear();
    for (auto& d : h) d(o);
  }

 private:
  boost::asio::io_context& io_;
};

class SiteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-site-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    DatabaseOptions opts;
    db_.emplace(*Database::open(dir_ / "lanegate.db", opts));
    ASSERT_TRUE(db_->migrate(database_schema()));
    store_.emplace(*Store::open(*db_, clock_));
    outbox_.emplace(*queue::Outbox::open(*db_, cfg_.queue, clock_));

    cfg_.gateway.id = "gw1";
    cfg_.gateway.site_name = "Test";
    config::ParkingTariff t;
    t.id = "lot";
    t.free_minutes = 15;
    t.unit_minutes = 30;
    t.day_rate = Money::from_fen(300);
    t.night_rate = Money::from_fen(300);
    t.daily_cap = Money::from_fen(3000);
    cfg_.parking_tariffs.push_back(t);
    config::LaneSection entry;
    entry.id = "in";
    entry.mode = config::LaneMode::kParkingEntry;
    entry.camera = "cam-in";
    entry.barrier = "bar-in";
    entry.display = "led-in";
    entry.tariff = "lot";
    config::LaneSection exit = entry;
    exit.id = "out";
    exit.mode = config::LaneMode::kParkingExit;
    exit.camera = "cam-out";
    exit.barrier = "bar-out";
    exit.display = "led-out";
    config::LaneSection taxi;
    taxi.id = "taxi";
    taxi.mode = config::LaneMode::kTaxi;
    taxi.meter = "m1";
    cfg_.lanes = {entry, exit, taxi};
    cfg_.offline.per_transaction = Money::from_fen(5000);
    gate_ = std::make_unique<FakeGate>(io_);
    site_ = std::make_unique<Site>(io_, cfg_, *store_, *outbox_, clock_, actuator_, *gate_);
  }

  void TearDown() override {
    site_.reset();
    outbox_.reset();
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  lane::PlateRead read(const std::string& lane, const std::string& plate) {
    lane::PlateRead r;
    r.lane = lane;
    r.device = "cam-" + lane;
    r.plate = plate;
    r.received_at = clock_.now();
    r.received_steady = clock_.steady_now();
    return r;
  }

  void run() {
    io_.restart();
    io_.poll();
  }

  void arrive(const std::string& lane, const std::string& plate) {
    site_->on_event(read(lane, plate));
    run();
  }

  std::vector<TxRecord> txs() { return *store_->list_transactions(TxFilter{}); }

  std::filesystem::path dir_;
  FakeClock clock_{*parse_rfc3339("2026-11-22T10:00:00+08:00")};
  config::Config cfg_;
  boost::asio::io_context io_;
  std::optional<Database> db_;
  std::optional<Store> store_;
  std::optional<queue::Outbox> outbox_;
  FakeActuator actuator_;
  std::unique_ptr<FakeGate> gate_;
  std::unique_ptr<Site> site_;
};

// A trip of meter m1 on lane "taxi", boarding 09:30, alighting 09:55.
inline lane::TripRecord taxi_trip(std::uint32_t number, std::int64_t fare_fen,
                                  std::uint8_t payment_type = 0x09) {
  lane::TripRecord trip;
  trip.meter = "m1";
  trip.lane = "taxi";
  trip.plate = "B12345";
  trip.fare = Money::from_fen(fare_fen);
  trip.trip_number = number;
  trip.payment_type = payment_type;
  trip.boarding = lane::CivilTime{2026, 11, 22, 9, 30};
  trip.alighting = lane::CivilTime{2026, 11, 22, 9, 55};
  return trip;
}

}  // namespace lanegate::gateway
