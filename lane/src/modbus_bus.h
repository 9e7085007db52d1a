#pragma once
// One Modbus bus: one thread, one libmodbus context, every device on the bus polled in
// turn. See drivers.h for the invariants. Private to lane/.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "lane/events.h"
#include "lane/plate.h"
#include "lane/register_map.h"
#include "modbus_link.h"

namespace lanegate::lane {

using Steady = std::chrono::steady_clock;

struct ModbusDevice {
  config::DeviceSection cfg;
  std::string lane;  // lane this device belongs to ("" if none)
  std::variant<CameraMap, LoopMap, BarrierMap, DisplayMap, RoadsideMap> map;

  // Health (bus thread writes, any thread reads `health_now`).
  Health health = Health::kDown;
  std::atomic<int> health_now{static_cast<int>(Health::kDown)};
  int failures = 0;
  int probe_ms = 0;  // current probe interval while down (backoff)
  Steady::time_point next_poll{};

  // camera and roadside unit: last sequence seen (nullopt until the first answer)
  std::optional<std::uint16_t> last_sequence;
  TextEncoding encoding = TextEncoding::kUtf8;
  std::map<std::string, SteadyTime> recent_plates;  // plate -> last accepted
  metrics::Counter* plate_reads = nullptr;
  // Vehicles the lane's loop saw in a row with no read (health.h); while
  // `degraded_by_misses`, good polls keep the camera degraded until a read arrives.
  int missed_vehicles = 0;
  bool degraded_by_misses = false;

  // loop
  std::optional<bool> present;

  // barrier
  BarrierState::Position position = BarrierState::Position::kUnknown;
  struct PendingOpen {
    std::uint64_t id = 0;
    int attempts = 0;
    Steady::time_point deadline;
  };
  std::optional<PendingOpen> pending_open;
};

class ModbusBus {
 public:
  ModbusBus(const config::BusSection& bus, std::unique_ptr<ModbusLink> link,
            std::vector<std::unique_ptr<ModbusDevice>> devices, const config::PlateRules& rules,
            EventSink& sink, const Clock& clock);
  ~ModbusBus();

  void start();
  void stop();

  bool has_device(std::string_view id) const;
  ModbusDevice* find(std::string_view id) const;

  struct OpenBarrier {
    std::string device;
    std::uint64_t id;
  };
  struct ShowText {
    std::string device;
    std::vector<std::uint16_t> registers;  // length register value + packed text
    std::uint16_t length;
  };
  // The site saw a vehicle on the camera's lane with no read (missed) or got a read.
  struct VehicleSeen {
    std::string device;
    bool missed;
  };
  using Command = std::variant<OpenBarrier, ShowText, VehicleSeen>;
  // Any thread.
  void enqueue(Command c);

 private:
  void run();
  bool ensure_connected();
  void run_commands();
  void poll(ModbusDevice& d);
  // Camera and roadside unit: poll the sequence register; on a change read the whole
  // record in one request. Empty when nothing new (or on the first answer).
  Result<std::vector<std::uint16_t>> read_new_record(ModbusDevice& d, int sequence_addr,
                                                     int record_start, int record_count);
  Status poll_camera(ModbusDevice& d, const CameraMap& m);
  Status poll_loop(ModbusDevice& d, const LoopMap& m);
  Status poll_barrier(ModbusDevice& d, const BarrierMap& m);
  Status poll_roadside(ModbusDevice& d, const RoadsideMap& m);
  void handle_camera_record(ModbusDevice& d, const CameraMap& m, std::span<std::uint16_t> regs);
  void reject_plate(ModbusDevice& d, PlateReject reason, std::string_view detail,
                    std::string_view plate);
  void write_open(ModbusDevice& d);
  void vehicle_seen(ModbusDevice& d, bool missed);
  void succeeded(ModbusDevice& d);
  void failed(ModbusDevice& d, const Error& e);
  void transition(ModbusDevice& d, Health to, std::string detail);
  void after_io(const Status& st);

  config::BusSection bus_;
  std::unique_ptr<ModbusLink> link_;
  std::vector<std::unique_ptr<ModbusDevice>> devices_;
  config::PlateRules rules_;
  EventSink& sink_;
  const Clock& clock_;
  int reconnect_backoff_ms_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Command> commands_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace lanegate::lane
