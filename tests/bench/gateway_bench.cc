// make bench / scripts/bench build gateway: the gateway's hot path and backlog figures.
// Prints numbers and ratios; asserts nothing.
//
//  1. Decision latency: camera sequence bump in the devices simulator (real Modbus TCP on
//     loopback) -> LaneDrivers -> Site (tariff, decision, one SQLite commit with
//     synchronous=FULL) -> barrier command issued, and -> the open coil written at the
//     simulated barrier. Offline path (uplink down, cached binding) and online path
//     (charge over HTTPS to the provider sandbox, ACCEPTED awaited), p50/p99, beside the
//     floor measured in the same run: one durable commit + one Modbus write round trip.
//  3. Backlog drain: N toll charges in the outbox (default 10,000 so that a plain run stays
//     within about 3 minutes on 2 shared cores; LANEGATE_BENCH_BACKLOG=100000 for the
//     documented figure, 10-20 minutes), then the uplink on: time until every charge has
//     reached the provider, against the raw rate of the same signed charges sent straight
//     from the client with the same number in flight (ratio).
//  2. Resident memory of a gateway process (a child of this bench: 6 lanes polling the
//     simulator, the database holding the backlog, uplink constructed): VmRSS and VmHWM.
//
// Environment: LANEGATE_BENCH_BACKLOG (items), LANEGATE_BENCH_SAMPLES (latency samples per
// path, default 200), LANEGATE_BENCH_DIR (default /var/tmp: a disk, not tmpfs).
#include <modbus/modbus.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "support/bench_stats.h"
#include "core/log.h"
#include "gateway/daemon.h"
#include "gateway/provider_wechatpay.h"
#include "gateway/site.h"
#include "gateway/store.h"
#include "gateway/uplink.h"
#include "lane/drivers.h"
#include "offline_queue/queue.h"
#include "sim/devices.h"
#include "sim/provider_sandbox.h"

using namespace lanegate;
using Steady = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace json = boost::json;

using bench::env_int;
using bench::ms_since;
using bench::pct;

namespace {

// ETC is a service-provider API: the bench box is special merchant kSubMchid of the
// service provider 1900000001; the contract id is 32 characters like the spec's examples.
constexpr const char* kContract = "wxLGbenchETCcontract000000000001";  // 粤B12345
constexpr const char* kSubMchid = "1900000109";
constexpr int kLanes = 6;

void print_latency(const char* what, const std::vector<double>& v) {
  bench::print_latency(what, v, 44);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  std::string out = s.str();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

fs::path demo_pki() {
  fs::path pki = fs::path(LANEGATE_BINARY_DIR) / "test-cache" / "provider-pki";
  fs::create_directories(pki.parent_path());
  std::string cmd = "flock '" + pki.string() + ".lock' " + LANEGATE_SOURCE_DIR +
                    "/scripts/make-demo-pki '" + pki.string() + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "make-demo-pki failed\n");
    std::exit(1);
  }
  return pki;
}

std::string plate_for(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05d", i);
  return std::string("粤B") + buf;
}

// Demo merchant + 2 x `plates` bound NORMAL plates (both paths' vehicles) + the demo
// ETC contract (the backlog's charges).
void write_seed(const fs::path& file, int plates) {
  json::array accounts{json::object{{"openid", "oLANEGATEdemo0001normal"}, {"overdue", false}}};
  json::array bound;
  for (int k = 0; k < 2 * plates; ++k) {
    const int i = k < plates ? k : 50000 + k - plates;  // offline and online vehicles
    bound.push_back(json::object{{"plate_number", plate_for(i)},
                                 {"plate_color", "BLUE"},
                                 {"openid", "oLANEGATEdemo0001normal"},
                                 {"service_state", "NORMAL"},
                                 {"service_open_time", "2026-03-01T09:00:00+08:00"}});
  }
  json::object seed{
      {"etc_bound_state", "BOUND"},
      {"merchants",
       json::array{json::object{{"mchid", "1900000001"},
                                {"appid", "wxd678efh567hg6787"},
                                {"certificate_file", "merchant.pem"},
                                {"apiv3_key_file", "apiv3.key"},
                                {"products", "PARKING,HIGHWAY,TAXI"},
                                {"sub_merchants", json::array{json::object{{"sub_mchid", kSubMchid}}}}}}},
      {"accounts", accounts},
      {"plates", bound},
      {"etc_contracts", json::array{json::object{{"contract_id", kContract},
                                                 {"plate_number", "粤B12345"},
                                                 {"openid", "oLANEGATEdemo0001normal"},
                                                 {"sub_mchid", kSubMchid},
                                                 {"bind_state", "BOUND"}}}}};
  std::ofstream(file) << json::serialize(seed);
}

// Six lanes on one Modbus TCP bus: three entries, three exits (camera, barrier, display);
// lane 0 ("x0", exit) is the one the latency figures use.
config::Config lanes_config(int port, const fs::path& pki, const std::string& base_url) {
  config::Config c;
  c.gateway.id = "bench";
  c.gateway.site_name = "bench lot";
  config::BusSection bus;
  bus.id = "lan";
  bus.transport = config::Transport::kTcp;
  bus.host = "127.0.0.1";
  bus.port = port;
  bus.response_timeout_ms = 300;
  bus.reconnect_max_ms = 500;
  c.buses.push_back(bus);
  config::ParkingTariff t;
  t.id = "lot";
  c.parking_tariffs.push_back(t);
  int unit = 1;
  for (int i = 0; i < kLanes; ++i) {
    const bool exit = i % 2 == 0;
    const std::string id = (exit ? "x" : "e") + std::to_string(i);
    auto dev = [&](const std::string& name, config::DeviceKind kind) {
      config::DeviceSection d;
      d.id = name;
      d.kind = kind;
      d.bus = "lan";
      d.unit_id = unit++;
      d.poll_interval_ms = kind == config::DeviceKind::kCamera ? 10 : 100;
      d.repeat_window_ms = 0;
      d.open_confirm_timeout_ms = 2000;
      c.devices.push_back(d);
      return name;
    };
    config::LaneSection l;
    l.id = id;
    l.mode = exit ? config::LaneMode::kParkingExit : config::LaneMode::kParkingEntry;
    l.camera = dev("cam-" + id, config::DeviceKind::kCamera);
    l.barrier = dev("bar-" + id, config::DeviceKind::kBarrier);
    l.display = dev("led-" + id, config::DeviceKind::kDisplay);
    l.tariff = "lot";
    c.lanes.push_back(l);
  }
  c.offline.site_exposure = Money::from_fen(1'000'000'000);
  c.offline.per_plate_outstanding = Money::from_fen(1'000'000);
  c.provider.base_url = base_url;
  c.provider.mode = config::ProviderMode::kPartner;
  c.provider.sp_mchid = "1900000001";
  c.provider.sp_appid = "wxd678efh567hg6787";
  c.provider.sub_mchid = kSubMchid;
  c.provider.etc.bound_state = "BOUND";
  c.provider.merchant_serial_no = slurp(pki / "merchant.serial");
  c.provider.merchant_private_key_file = pki / "merchant.key";
  c.provider.apiv3_key_file = pki / "apiv3.key";
  c.provider.platform_keys = {{slurp(pki / "platform.serial"), pki / "platform.pem"},
                              {slurp(pki / "pubkey.id"), pki / "pubkey.pub.pem"}};
  c.provider.notify_url = "https://127.0.0.1:9/notify";
  c.provider.ca_file = pki / "ca.pem";
  c.provider.charge_deadline_ms = 1500;
  c.queue.rate_per_second = 0;  // unlimited: the drain figure is the pipeline's own pace
  c.queue.max_in_flight = 16;
  return c;
}

// Gateway actuator: real drivers; records when the barrier command was issued.
class TimedActuator final : public gateway::LaneActuator {
 public:
  lane::LaneDrivers* drivers = nullptr;
  Result<std::uint64_t> open_barrier(std::string_view device) override {
    auto r = drivers->open_barrier(device);
    {
      std::lock_guard lock(mu_);
      last_ = Steady::now();
      ++opens_;
    }
    cv_.notify_all();
    return r;
  }
  Status show_text(std::string_view device, std::string_view text) override {
    return drivers->show_text(device, text);
  }
  Status ack_trip(std::string_view m, std::uint32_t n, const lane::CivilTime& b) override {
    return drivers->ack_trip(m, n, b);
  }
  // Waits for the open count to pass `seen`; returns when the command was issued.
  std::optional<Steady::time_point> wait_open(int seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return opens_ > seen; })) return std::nullopt;
    return last_;
  }
  int opens() {
    std::lock_guard lock(mu_);
    return opens_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Steady::time_point last_;
  int opens_ = 0;
};

class DownGate final : public gateway::ChargeGate {
 public:
  bool link_up() const override { return false; }
  void kick() override {}
  void await_charge(const std::string&, std::chrono::milliseconds,
                    std::function<void(gateway::OnlineOutcome)> done) override {
    done(gateway::OnlineOutcome::kNotTried);
  }
};

class PostingSink final : public lane::EventSink {
 public:
  PostingSink(asio::io_context& io, std::function<void(const lane::LaneEvent&)> f)
      : io_(io), f_(std::move(f)) {}
  void post(lane::LaneEvent e) override {
    asio::post(io_, [this, e = std::move(e)] { f_(e); });
  }

 private:
  asio::io_context& io_;
  std::function<void(const lane::LaneEvent&)> f_;
};

// Runs `f` on the io thread and waits for it.
template <typename F>
auto on_io(asio::io_context& io, F f) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto fut = task.get_future();
  asio::post(io, [&task] { task(); });
  return fut.get();
}

std::pair<long, long> vm_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  long rss = 0, hwm = 0;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) rss = std::strtol(line.c_str() + 6, nullptr, 10);
    if (line.starts_with("VmHWM:")) hwm = std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return {rss, hwm};
}

// ---- resident memory: a gateway process of its own ------------------------------------
int memory_child(const fs::path& db_file, int port, const std::string& base_url) {
  log::set_min_level(log::Level::kError);
  const fs::path pki = demo_pki();
  config::Config cfg = lanes_config(port, pki, base_url);
  auto db = Database::open(db_file);
  if (!db) return 1;
  auto store = gateway::Store::open(*db, SystemClock::instance());
  auto outbox = queue::Outbox::open(*db, cfg.queue, SystemClock::instance());
  if (!store || !outbox) return 1;
  auto stats = outbox->stats();
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  TimedActuator actuator;
  auto client = gateway::WechatPayClient::create(cfg.provider, SystemClock::instance());
  if (!client) return 1;
  gateway::Uplink uplink(io, cfg, *store, *outbox, **client, SystemClock::instance());
  gateway::Site site(io, cfg, *store, *outbox, SystemClock::instance(), actuator, uplink);
  PostingSink sink(io, [&](const lane::LaneEvent& e) { site.on_event(e); });
  auto drivers = lane::LaneDrivers::create(cfg, sink, SystemClock::instance());
  if (!drivers) return 1;
  actuator.drivers = drivers->get();
  (void)(*drivers)->start();
  std::thread t([&] { io.run(); });
  std::this_thread::sleep_for(std::chrono::seconds(3));  // 6 lanes polling
  auto [rss, hwm] = vm_kb();
  std::printf(
      "  gateway process, %d lanes polling, outbox %lld pending: VmRSS %ld KiB, VmHWM %ld KiB\n",
      kLanes, static_cast<long long>(stats ? stats->pending : -1), rss, hwm);
  std::fflush(stdout);
  (*drivers)->stop();
  guard.reset();
  io.stop();
  t.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string_view(argv[1]) == "--memory-child") {
    return memory_child(argv[2], std::atoi(argv[3]), argv[4]);
  }
  log::set_min_level(log::Level::kError);
  const long backlog = env_int("LANEGATE_BENCH_BACKLOG", 10'000);
  const int samples = static_cast<int>(env_int("LANEGATE_BENCH_SAMPLES", 200));
  const fs::path base =
      std::getenv("LANEGATE_BENCH_DIR") ? std::getenv("LANEGATE_BENCH_DIR") : "/var/tmp";
  std::string tmpl = (base / "lanegate-gateway-bench-XXXXXX").string();
  const fs::path dir = mkdtemp(tmpl.data());
  const fs::path pki = demo_pki();

  // The simulated world: devices (Modbus TCP) and the provider sandbox (HTTPS).
  write_seed(dir / "seed.json", samples);
  sim::ProviderSandboxOptions po;
  po.pki_dir = pki;
  po.seed_file = dir / "seed.json";
  po.db_file = dir / "sandbox.db";
  po.time_factor = 0.01;
  auto sandbox = sim::ProviderSandbox::start(po);
  if (!sandbox) {
    std::fprintf(stderr, "sandbox: %s\n", sandbox.error().to_string().c_str());
    return 1;
  }
  sim::ProviderFaults quiet;
  quiet.notifications_paused = true;  // no receiver here: the uplink queries instead
  (*sandbox)->set_faults(quiet);
  config::Config cfg = lanes_config(0, pki, (*sandbox)->base_url());
  sim::DevicesSimOptions so;
  so.control_port = -1;
  so.barrier_open_delay_ms = 20;
  so.barrier_hold_ms = 50;
  auto world = sim::DevicesSim::start(cfg, so);
  if (!world) {
    std::fprintf(stderr, "devices: %s\n", world.error().to_string().c_str());
    return 1;
  }
  const int port = *(*world)->tcp_port("lan");
  cfg.buses[0].port = port;

  std::printf("gateway_bench: %d cores, backlog %ld, %d latency samples per path, files in %s\n",
              static_cast<int>(std::thread::hardware_concurrency()), backlog, samples, dir.c_str());

  // ---- 1. floor: one durable commit + one Modbus write round trip -----------------------
  std::vector<double> floor_ms, commit_ms, write_ms;
  {
    auto fdb = Database::open(dir / "floor.db");
    (void)fdb->exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)");
    modbus_t* ctx = modbus_new_tcp("127.0.0.1", port);
    modbus_set_slave(ctx, 2);  // bar-x0
    modbus_connect(ctx);
    for (int i = 0; i < samples; ++i) {
      const auto t0 = Steady::now();
      {
        auto txn = fdb->begin();
        auto st = fdb->prepare("INSERT INTO t(v) VALUES(?)");
        (void)st->bind_all(std::string(200, 'x')).run();
        (void)txn->commit();
      }
      const auto t1 = Steady::now();
      modbus_write_bit(ctx, 0, 1);
      const auto t2 = Steady::now();
      commit_ms.push_back(ms_since(t0, t1));
      write_ms.push_back(ms_since(t1, t2));
      floor_ms.push_back(ms_since(t0, t2));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    modbus_close(ctx);
    modbus_free(ctx);
  }

  // ---- gateway pieces on one io thread ---------------------------------------------------
  auto db = Database::open(dir / "lanegate.db");
  if (!db || !db->migrate(gateway::database_schema())) {
    std::fprintf(stderr, "database\n");
    return 1;
  }
  auto store = gateway::Store::open(*db, SystemClock::instance());
  auto outbox = queue::Outbox::open(*db, cfg.queue, SystemClock::instance());
  auto client = gateway::WechatPayClient::create(cfg.provider, SystemClock::instance());
  if (!store || !outbox || !client) {
    std::fprintf(stderr, "gateway setup failed\n");
    return 1;
  }
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  TimedActuator actuator;
  DownGate down;
  std::unique_ptr<gateway::Uplink> uplink;
  std::unique_ptr<gateway::Site> site;
  std::mutex read_mu;
  Steady::time_point last_read{};  // when the PlateRead of lane x0 left the driver
  PostingSink sink(io, [&](const lane::LaneEvent& e) {
    if (const auto* p = std::get_if<lane::PlateRead>(&e); p != nullptr && p->lane == "x0") {
      std::lock_guard lock(read_mu);
      last_read = p->received_steady;
    }
    if (site) site->on_event(e);
  });
  auto drivers = lane::LaneDrivers::create(cfg, sink, SystemClock::instance());
  if (!drivers) {
    std::fprintf(stderr, "drivers: %s\n", drivers.error().to_string().c_str());
    return 1;
  }
  actuator.drivers = drivers->get();
  (void)(*drivers)->start();
  std::thread io_thread([&] { io.run(); });

  // Open stays (2 h) for every plate; offline plates get a fresh NORMAL binding, online
  // plates a provider parking entry (the charge needs its parking_id).
  // (Offline plates get their entry too, so their charges settle when the uplink returns.)
  auto prepare = [&](int first, int count) {
    for (int i = first; i < first + count; ++i) {
      const std::string plate = plate_for(i);
      const std::string no = "BENCHIN" + std::to_string(i);
      std::string parking_id;
      {
        gateway::ParkingEntryRequest r{
            no,          plate, "BLUE", SystemClock::instance().now() - std::chrono::hours(2),
            "bench lot", 900,   {}};
        auto e = (*client)->create_parking_entry(r);
        if (e) parking_id = e->id;
      }
      on_io(io, [&] {
        auto txn = db->begin();
        gateway::Store::Session s{
            0, "e1", plate, "BLUE", SystemClock::instance().now() - std::chrono::hours(2), no, {}};
        (void)store->open_session(*txn, s);
        if (!parking_id.empty()) (void)store->set_parking_id(*txn, no, parking_id);
        (void)store->put_binding(*txn, plate, gateway::BindingState::kNormal, SystemClock::instance().now());
        (void)txn->commit();
        return 0;
      });
    }
  };
  auto run_path = [&](int first, std::vector<double>& to_cmd, std::vector<double>& to_coil,
                      std::vector<double>& read_to_cmd) {
    for (int i = first; i < first + samples; ++i) {
      const int seen = actuator.opens();
      auto before = (*world)->barrier("bar-x0");
      sim::VehicleArrival v;
      v.lane = "x0";
      v.plate = plate_for(i);
      const auto t0 = Steady::now();
      if (!(*world)->vehicle_arrives(v)) continue;
      auto t1 = actuator.wait_open(seen, std::chrono::seconds(5));
      if (!t1) continue;  // a fallback (should not happen here): no barrier command
      to_cmd.push_back(ms_since(t0, *t1));
      {
        std::lock_guard lock(read_mu);
        if (last_read > t0) read_to_cmd.push_back(ms_since(last_read, *t1));
      }
      for (int spin = 0; spin < 20000; ++spin) {
        auto now = (*world)->barrier("bar-x0");
        if (now && before && now->open_commands > before->open_commands) {
          to_coil.push_back(ms_since(t0, Steady::now()));
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  };

  std::vector<double> off_cmd, off_coil, on_cmd, on_coil, off_read, on_read;
  prepare(0, samples);
  on_io(io, [&] {
    site = std::make_unique<gateway::Site>(io, cfg, *store, *outbox, SystemClock::instance(),
                                           actuator, down);
    return 0;
  });
  run_path(0, off_cmd, off_coil, off_read);

  prepare(50000, samples);
  on_io(io, [&] {
    site.reset();
    uplink = std::make_unique<gateway::Uplink>(io, cfg, *store, *outbox, **client,
                                               SystemClock::instance());
    uplink->start();
    site = std::make_unique<gateway::Site>(io, cfg, *store, *outbox, SystemClock::instance(),
                                           actuator, *uplink);
    return 0;
  });
  // The offline charges just made drain first; let them go before measuring.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  run_path(50000, on_cmd, on_coil, on_read);

  std::printf(
      "\n1. decision latency, plate read (camera sequence bump) -> barrier, camera poll 10 ms\n");
  print_latency("floor: durable commit + Modbus write", floor_ms);
  print_latency("  of which the commit (synchronous=FULL)", commit_ms);
  print_latency("  of which the Modbus write round trip", write_ms);
  print_latency("offline: PlateRead -> command (gateway)", off_read);
  print_latency("offline path -> barrier command issued", off_cmd);
  print_latency("offline path -> open coil written", off_coil);
  print_latency("online: PlateRead -> command (gateway)", on_read);
  print_latency("online path (HTTPS, ACCEPTED) -> command", on_cmd);
  print_latency("online path -> open coil written", on_coil);
  std::printf(
      "  ratio p50 to the floor: offline %.1f (gateway part %.1f), online %.1f (gateway part "
      "%.1f)\n",
      pct(off_coil, 0.5) / std::max(0.001, pct(floor_ms, 0.5)),
      pct(off_read, 0.5) / std::max(0.001, pct(floor_ms, 0.5)),
      pct(on_coil, 0.5) / std::max(0.001, pct(floor_ms, 0.5)),
      pct(on_read, 0.5) / std::max(0.001, pct(floor_ms, 0.5)));
  std::fflush(stdout);

  on_io(io, [&] {
    site.reset();
    uplink->stop();
    return 0;
  });
  (*drivers)->stop();

  // ---- 2. backlog: fill, memory, raw rate, drain ----------------------------------------
  const fs::path bdb_file = dir / "backlog.db";
  auto bdb = Database::open(bdb_file);
  if (!bdb || !bdb->migrate(gateway::database_schema())) return 1;
  auto bstore = gateway::Store::open(*bdb, SystemClock::instance());
  auto boutbox = queue::Outbox::open(*bdb, cfg.queue, SystemClock::instance());
  if (!bstore || !boutbox) return 1;
  const auto fill0 = Steady::now();
  const auto now = SystemClock::instance().now();
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  for (long done = 0; done < backlog;) {
    auto txn = bdb->begin();
    for (int k = 0; k < 1000 && done < backlog; ++k, ++done) {
      auto no = gateway::new_out_trade_no("bench", 'H');
      gateway::TxRecord tx;
      tx.out_trade_no = *no;
      tx.kind = gateway::TxKind::kToll;
      tx.lane = "etc";
      tx.plate = "粤B12345";
      tx.plate_colour = "BLUE";
      tx.amount = Money::from_fen(100 + done % 5000);
      tx.decision = gateway::DecisionKind::kPassOffline;
      tx.decision_reason = "offline_within_limits";
      tx.offline = true;
      tx.contract_id = kContract;
      tx.payment_method = "provider";
      (void)bstore->insert_transaction(*txn, tx);
      json::object p{{"out_trade_no", *no},
                     {"product", "HIGHWAY"},
                     {"lane", "etc"},
                     {"plate", "粤B12345"},
                     {"colour", "BLUE"},
                     {"amount_fen", tx.amount.fen()},
                     {"start_time_ms", now_ms - 3'600'000},
                     {"end_time_ms", now_ms},
                     {"description", "通行费 bench"},
                     {"device_id", "cam-etc"},
                     {"contract_id", kContract},
                     {"entrance", "广州北"},
                     {"exit", "深圳南"}};
      (void)boutbox->enqueue(*txn, gateway::kTopicCharge, "trade:" + *no, "charge:" + *no,
                             json::serialize(p));
    }
    (void)txn->commit();
  }
  const double fill_s = ms_since(fill0, Steady::now()) / 1000;

  std::printf("\n2. resident memory (gateway with the backlog in its database)\n");
  std::fflush(stdout);
  if (pid_t child = fork(); child == 0) {
    execl("/proc/self/exe", argv[0], "--memory-child", bdb_file.c_str(),
          std::to_string(port).c_str(), (*sandbox)->base_url().c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  } else if (child > 0) {
    int status = 0;
    waitpid(child, &status, 0);
  }
  {
    auto [rss, hwm] = vm_kb();
    std::printf(
        "  (this bench process, with the simulators and the sandbox: VmRSS %ld KiB, VmHWM %ld "
        "KiB)\n",
        rss, hwm);
  }

  // Raw rate: the same signed charges straight from the client, same number in flight.
  const int in_flight = cfg.queue.max_in_flight;
  const long raw_n = std::min<long>(backlog, 2000);
  std::atomic<long> next{0};
  std::atomic<long> raw_ok{0};
  const auto raw0 = Steady::now();
  {
    std::vector<std::thread> ts;
    for (int t = 0; t < in_flight; ++t) {
      ts.emplace_back([&] {
        for (long i = next++; i < raw_n; i = next++) {
          gateway::ChargeRequest r;
          r.product = gateway::Product::kHighway;
          r.out_trade_no = "RAW" + std::to_string(i) + "x" + std::to_string(now_ms % 100000);
          r.description = "通行费 bench";
          r.amount = Money::from_fen(100);
          r.contract_id = kContract;
          r.highway.plate_number = "粤B12345";
          r.highway.start_time = now - std::chrono::hours(1);
          r.highway.end_time = now;
          r.highway.entrance = "广州北";
          r.highway.exit = "深圳南";
          if ((*client)->charge(r, gateway::ChargeAttempt::kFirst)) ++raw_ok;
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  const double raw_rate = static_cast<double>(raw_ok) / (ms_since(raw0, Steady::now()) / 1000);

  // Drain: the uplink on, until no charge is RECORDED or SUBMITTING.
  gateway::Uplink* drain_uplink = nullptr;
  std::unique_ptr<gateway::Uplink> drain_holder;
  const auto drain0 = Steady::now();
  on_io(io, [&] {
    drain_holder = std::make_unique<gateway::Uplink>(io, cfg, *bstore, *boutbox, **client,
                                                     SystemClock::instance());
    drain_uplink = drain_holder.get();
    drain_uplink->start();
    drain_uplink->kick();
    return 0;
  });
  auto reader = Database::open(bdb_file);
  long left = backlog;
  double drain_s = 0;
  const auto limit = std::chrono::seconds(env_int("LANEGATE_BENCH_DRAIN_LIMIT_S", 1800));
  while (Steady::now() - drain0 < limit) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    auto st = reader->prepare(
        "SELECT COUNT(*) FROM transactions WHERE state IN ('RECORDED','SUBMITTING')");
    if (st && st->step() && st->column_int64(0) >= 0) left = st->column_int64(0);
    if (left == 0) {
      drain_s = ms_since(drain0, Steady::now()) / 1000;
      break;
    }
  }
  on_io(io, [&] {
    drain_uplink->stop();
    return 0;
  });

  std::printf("\n3. backlog drain (toll charges, %d in flight, no rate limit)\n", in_flight);
  std::printf("  filled %ld transactions + outbox items in %.1f s\n", backlog, fill_s);
  std::printf("  raw signed charges client -> sandbox: %.0f /s (%ld of %ld ok)\n", raw_rate,
              raw_ok.load(), raw_n);
  if (drain_s > 0) {
    const double rate = static_cast<double>(backlog) / drain_s;
    std::printf("  drained %ld in %.1f s: %.0f /s, ratio drain/raw %.2f\n", backlog, drain_s, rate,
                rate / std::max(1.0, raw_rate));
  } else {
    std::printf("  drain not finished within the limit: %ld of %ld still to send\n", left, backlog);
  }
  std::fflush(stdout);

  on_io(io, [&] {
    drain_holder.reset();
    uplink.reset();
    return 0;
  });
  guard.reset();
  io.stop();
  io_thread.join();
  (*world)->stop();
  (*sandbox)->stop();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
