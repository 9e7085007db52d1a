// [gateway] max_database_mb as an operator (and the chaos test) uses it: when the bound is
// reached SQLite answers SQLITE_FULL, the site switches every lane to attendant mode and
// opens nothing on its own; raising the bound (as a SIGHUP reload does) lets the next
// vehicle through and ends attendant mode. Real SQLite file, the production schema.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "core/clock.h"
#include "core/sqlite.h"
#include "core/time_format.h"
#include "gateway/daemon.h"
#include "gateway/invoice_uplink.h"
#include "gateway/site.h"
#include "gateway/store.h"
#include "offline_queue/queue.h"

namespace lanegate::gateway {
namespace {

namespace fs = std::filesystem;

class CountingActuator final : public LaneActuator {
 public:
  int opened = 0;
  Result<std::uint64_t> open_barrier(std::string_view) override {
    return static_cast<std::uint64_t>(++opened);
  }
  Status show_text(std::string_view, std::string_view) override { return {}; }
  Status ack_trip(std::string_view, std::uint32_t, const lane::CivilTime&) override { return {}; }
};

// The link is down: the offline rule decides, no provider involved.
class DownGate final : public ChargeGate {
 public:
  bool link_up() const override { return false; }
  void kick() override {}
  void await_charge(const std::string&, std::chrono::milliseconds,
                    std::function<void(OnlineOutcome)> done) override {
    done(OnlineOutcome::kNotTried);
  }
};

std::int64_t pragma(Database& db, const std::string& name) {
  auto st = db.prepare("PRAGMA " + name);
  EXPECT_TRUE(st);
  EXPECT_TRUE(st->step().value_or(false));
  return st->column_int64(0);
}

TEST(DatabaseLimit, StateDatabaseOptionsAndPragmaFollowTheConfig) {
  config::GatewaySection g;
  EXPECT_EQ(state_database_options(g).max_page_count, 0);
  g.max_database_mb = 64;
  EXPECT_EQ(state_database_options(g).max_page_count, 64 * 256);

  std::string tmpl = (fs::temp_directory_path() / "lanegate-dblimit-XXXXXX").string();
  const fs::path dir = mkdtemp(tmpl.data());
  {
    Database db = Database::open(dir / "x.db", state_database_options(g)).value();
    EXPECT_EQ(pragma(db, "max_page_count"), 64 * 256);
    g.max_database_mb = 2;
    ASSERT_TRUE(apply_database_limit(db, g));
    EXPECT_EQ(pragma(db, "max_page_count"), 2 * 256);
    g.max_database_mb = 0;  // unlimited again
    ASSERT_TRUE(apply_database_limit(db, g));
    EXPECT_GT(pragma(db, "max_page_count"), 1'000'000);
  }
  fs::remove_all(dir);
}

class FullDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "lanegate-full-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    db_.emplace(Database::open(dir_ / "lanegate.db").value());
    ASSERT_TRUE(db_->migrate(database_schema()));
    // Something already uses the space (old records, in real life).
    ASSERT_TRUE(db_->exec(
        "CREATE TABLE test_filler(b BLOB); INSERT INTO test_filler VALUES (zeroblob(1200000));"));
    store_.emplace(Store::open(*db_, clock_).value());
    outbox_.emplace(queue::Outbox::open(*db_, cfg_.queue, clock_).value());
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
    entry.tariff = "lot";
    cfg_.lanes = {entry};
    site_ = std::make_unique<Site>(io_, cfg_, *store_, *outbox_, clock_, actuator_, gate_);
  }
  void TearDown() override {
    site_.reset();
    outbox_.reset();
    store_.reset();
    db_.reset();
    fs::remove_all(dir_);
  }

  void arrive(int n) {
    lane::PlateRead r;
    r.lane = "in";
    r.device = "cam-in";
    r.plate = "粤B" + std::to_string(10000 + n);
    r.received_at = clock_.now();
    r.received_steady = clock_.steady_now();
    site_->on_event(r);
    io_.restart();
    io_.poll();
  }

  fs::path dir_;
  FakeClock clock_{*parse_rfc3339("2026-11-22T10:00:00+08:00")};
  config::Config cfg_;
  boost::asio::io_context io_;
  std::optional<Database> db_;
  std::optional<Store> store_;
  std::optional<queue::Outbox> outbox_;
  CountingActuator actuator_;
  DownGate gate_;
  std::unique_ptr<Site> site_;
};

TEST_F(FullDatabaseTest, BoundReachedSwitchesToAttendantModeAndRaisingItRecovers) {
  arrive(0);
  ASSERT_EQ(actuator_.opened, 1);
  ASSERT_FALSE(site_->attendant_mode());
  // The operator bounds the database below its current size: no page can be added.
  config::GatewaySection g;
  g.max_database_mb = 1;
  ASSERT_TRUE(apply_database_limit(*db_, g));
  int n = 1;
  for (; n < 400 && !site_->attendant_mode(); ++n) {
    const int before = actuator_.opened;
    arrive(n);
    if (site_->attendant_mode()) {
      EXPECT_EQ(actuator_.opened, before) << "the vehicle that met the full database got no open";
    }
  }
  ASSERT_TRUE(site_->attendant_mode()) << "SQLITE_FULL never reached after " << n << " vehicles";
  // Stays in attendant mode while full.
  const int opened = actuator_.opened;
  arrive(1000);
  EXPECT_TRUE(site_->attendant_mode());
  EXPECT_EQ(actuator_.opened, opened);
  // Raised (SIGHUP reload of a larger max_database_mb): the next vehicle passes.
  g.max_database_mb = 64;
  ASSERT_TRUE(apply_database_limit(*db_, g));
  arrive(1001);
  EXPECT_FALSE(site_->attendant_mode());
  EXPECT_EQ(actuator_.opened, opened + 1);
}

}  // namespace
}  // namespace lanegate::gateway
