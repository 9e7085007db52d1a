// make bench: lane driver latency figures (prints numbers, asserts nothing).
//  1. Plate event -> PlateRead delivered, Modbus TCP on loopback, at two poll intervals:
//     the time from the simulated camera's new record to the event reaching the sink.
//  2. RTU over a pseudo-terminal: the software time of one whole-record read (15 holding
//     registers: what the camera driver does on a sequence change), beside the wire-time
//     floor of the same frames at 9600 and 115200 baud. A pty does not pace bytes at the
//     baud rate, so the measured time is pure software overhead (libmodbus master, the
//     simulated line and the simulated slave).
//  3. Plate event -> PlateRead over that RTU line, end to end.
#include <modbus/modbus.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "support/bench_stats.h"
#include "core/log.h"
#include "lane/drivers.h"
#include "sim/devices.h"

using namespace lanegate;
using Steady = std::chrono::steady_clock;

namespace {

class LatencySink final : public lane::EventSink {
 public:
  void post(lane::LaneEvent e) override {
    const auto now = Steady::now();
    if (auto* p = std::get_if<lane::PlateRead>(&e)) {
      std::lock_guard lock(mu_);
      last_plate_ = p->plate;
      at_ = now;
      cv_.notify_all();
    }
  }
  // Waits for `plate`; returns its delivery time.
  std::optional<Steady::time_point> wait(const std::string& plate) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(3), [&] { return last_plate_ == plate; })) {
      return std::nullopt;
    }
    return at_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string last_plate_;
  Steady::time_point at_;
};

using bench::pct;

config::DeviceSection camera(const std::string& bus, int poll_ms) {
  config::DeviceSection d;
  d.id = "bench-cam";
  d.kind = config::DeviceKind::kCamera;
  d.bus = bus;
  d.unit_id = 1;
  d.poll_interval_ms = poll_ms;
  d.repeat_window_ms = 0;
  return d;
}

// Returns latencies in ms.
std::vector<double> plate_latency(config::Config cfg, int samples, int poll_ms) {
  sim::DevicesSimOptions so;
  so.control_port = -1;
  auto s = sim::DevicesSim::start(cfg, so);
  if (!s) {
    std::fprintf(stderr, "sim: %s\n", s.error().to_string().c_str());
    return {};
  }
  for (auto& b : cfg.buses) {
    if (b.transport == config::Transport::kTcp) b.port = *(*s)->tcp_port(b.id);
  }
  LatencySink sink;
  auto d = lane::LaneDrivers::create(cfg, sink, SystemClock::instance());
  if (!d || !(*d)->start()) {
    std::fprintf(stderr, "drivers failed\n");
    return {};
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // first poll done
  std::mt19937 rng(7);
  // Uniform phase against the poll timer: wait 0..poll interval after each delivery.
  std::uniform_int_distribution<int> spacing_us(0, poll_ms * 1000);
  std::vector<double> out;
  for (int i = 0; i < samples; ++i) {
    char plate[32];
    std::snprintf(plate, sizeof plate, "粤B%05d", i % 100000);
    sim::VehicleArrival v;
    v.camera = "bench-cam";
    v.plate = plate;
    const auto t0 = Steady::now();
    if (!(*s)->vehicle_arrives(v)) break;
    auto t1 = sink.wait(plate);
    if (!t1) {
      std::fprintf(stderr, "plate %d not delivered\n", i);
      break;
    }
    out.push_back(std::chrono::duration<double, std::milli>(*t1 - t0).count());
    // Random phase against the poll timer.
    std::this_thread::sleep_for(std::chrono::microseconds(spacing_us(rng)));
  }
  (*d)->stop();
  (*s)->stop();
  return out;
}

void report(const char* what, const std::vector<double>& ms) {
  std::printf("%-58s n=%4zu  p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", what, ms.size(),
              pct(ms, 0.5), pct(ms, 0.99),
              ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end()));
}

std::filesystem::path temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-bench-XXXXXX").string();
  return ::mkdtemp(tmpl.data());
}

}  // namespace

int main() {
  log::set_min_level(log::Level::kWarning);
  std::printf("lane_bench (machine: shared, noisy; figures vary run to run)\n\n");

  // 1. TCP on loopback.
  for (int poll_ms : {50, 10}) {
    config::Config cfg;
    config::BusSection b;
    b.id = "lan";
    b.host = "127.0.0.1";
    b.port = 0;
    cfg.buses.push_back(b);
    cfg.devices.push_back(camera("lan", poll_ms));
    char what[96];
    std::snprintf(what, sizeof what, "plate event -> PlateRead, Modbus TCP, poll %d ms", poll_ms);
    report(what, plate_latency(cfg, poll_ms == 50 ? 200 : 300, poll_ms));
  }
  std::printf(
      "  (the poll interval bounds the wait: expect ~interval/2 at p50 plus two requests)\n\n");

  // 2. RTU over a pty: software time of one whole-record read.
  const auto dir = temp_dir();
  const std::string path = (dir / "rtu0").string();
  config::Config cfg;
  config::BusSection b;
  b.id = "rs485";
  b.transport = config::Transport::kRtu;
  b.serial_device = path;
  b.baud = 115200;
  cfg.buses.push_back(b);
  cfg.devices.push_back(camera("rs485", 10));
  {
    sim::DevicesSimOptions so;
    so.control_port = -1;
    auto s = sim::DevicesSim::start(cfg, so);
    if (!s) {
      std::fprintf(stderr, "sim: %s\n", s.error().to_string().c_str());
      return 1;
    }
    modbus_t* ctx = modbus_new_rtu(path.c_str(), 115200, 'N', 8, 1);
    modbus_set_slave(ctx, 1);
    if (modbus_connect(ctx) != 0) {
      std::fprintf(stderr, "connect %s: %s\n", path.c_str(), modbus_strerror(errno));
      return 1;
    }
    std::vector<double> ms;
    std::uint16_t regs[15];
    for (int i = 0; i < 2000; ++i) {
      const auto t0 = Steady::now();
      if (modbus_read_registers(ctx, 0, 15, regs) != 15) {
        std::fprintf(stderr, "read failed: %s\n", modbus_strerror(errno));
        break;
      }
      ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
    }
    modbus_close(ctx);
    modbus_free(ctx);
    (*s)->stop();
    report("RTU pty: read 15 holding registers (whole plate record)", ms);
    // Frame sizes: request 8 bytes; reply 1+1+1+30+2 = 35 bytes. 11 bit times per
    // character as in the spec (start, 8 data, parity or 2nd stop, stop), plus the
    // t3.5 silent interval after each frame (38.5 bit times; fixed 1.75 ms above 19200).
    const double bytes = 8 + 35;
    for (int baud : {9600, 115200}) {
      const double t35 = baud > 19200 ? 1.75 : 38.5 * 1000.0 / baud;
      const double floor_ms = bytes * 11 * 1000.0 / baud + 2 * t35;
      std::printf(
          "  wire floor at %6d baud: %6.2f ms   software p50 / floor = %5.1f %%   p99 / floor = "
          "%5.1f %%\n",
          baud, floor_ms, 100 * pct(ms, 0.5) / floor_ms, 100 * pct(ms, 0.99) / floor_ms);
    }
    std::printf("\n");
  }
  // 3. End to end over RTU.
  report("plate event -> PlateRead, Modbus RTU pty, poll 10 ms", plate_latency(cfg, 300, 10));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
