#pragma once
// Internal to sim/src/devices*.cc: the device models and servers behind DevicesSim.
// Not for other modules (kept under include/ only because sim's private sources share it).
//
// Locking: SimDevice::mu guards the device's register map and model state; SimMeter::mu
// guards its decoder and trip tables. Servers take the device lock for one reply.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "lane/meter_frame.h"
#include "lane/register_map.h"
#include "sim/devices.h"

struct _modbus;
struct _modbus_mapping_t;

namespace httplib {
class Server;
}

namespace lanegate::sim {

struct SimDevice {
  SimDevice(const config::DeviceSection& c, std::string lane_id);
  ~SimDevice();
  SimDevice(const SimDevice&) = delete;
  SimDevice& operator=(const SimDevice&) = delete;

  // REQUIRES: mu held. Called after every reply the device sent.
  void after_reply(const std::uint8_t* req, int req_len, int header_len);
  // REQUIRES: mu held. Barrier and loop timers.
  void tick(std::chrono::steady_clock::time_point now);

  config::DeviceSection cfg;
  std::string lane;
  std::mutex mu;
  _modbus_mapping_t* map = nullptr;  // full 64 K address space of each table
  // False when this device shares another's map: devices with the same unit id on one bus
  // (RTU line or TCP bus) are one physical slave (e.g. a lane controller with loop and
  // barrier), so they share one register space and answer each request once (SimSlave).
  bool owns_map = true;
  bool silent = false;
  std::atomic<std::int64_t> answered{0};
  std::uint16_t sequence = 0;  // camera / roadside unit

  // camera / roadside unit: the sequence of the last record the master read in full (its
  // one whole-record request). A device holds one record; the scenario waits for this
  // before it writes the next vehicle's, so a burst of vehicles never loses one.
  std::uint16_t record_read = 0;
  int record_start = -1;
  int record_count = 0;

  // display: every text written, in order, as raw GBK bytes. The register holds only the
  // latest text, which a quick run of decisions (a queue at a toll lane) overwrites before
  // anyone could read it; the history keeps each vehicle's.
  std::vector<std::string> texts;
  int text_length_reg = -1;
  int text_reg = -1;
  int text_registers = 0;
  // REQUIRES: mu held. The display's current text as raw bytes.
  std::string display_bytes() const;

  // loop
  std::optional<std::chrono::steady_clock::time_point> loop_clear_at;

  // barrier
  enum class Phase { kClosed, kRaising, kOpen, kLowering };
  lane::BarrierMap barrier_map;
  Phase phase = Phase::kClosed;
  std::chrono::steady_clock::time_point deadline{};
  bool stuck = false;
  int open_commands = 0;
  int open_delay_ms = 300;
  int hold_ms = 3000;

  // push camera (cfg.push()): what it sent and how the gateway answered. Its event numbers
  // are event_base + sequence: a base from the start time keeps them fresh across runs of
  // the simulator against one gateway database (which deduplicates by camera and event).
  PushCameraState push;
  std::uint64_t event_base = 0;
  std::uint64_t events = 0;                                // pushes attempted
  std::chrono::steady_clock::time_point next_heartbeat{};  // heartbeat thread only
};

// One slave on a bus: every device configured with the same unit id on one bus is one
// physical box (e.g. a lane controller with loop and barrier behind unit 2), so they share
// one register map (owned by `dev`) and each request addressed to the unit gets one reply.
// Locks: answer() holds every unit device's mu, in `unit` order (no other code holds two).
struct SimSlave {
  SimDevice* dev = nullptr;      // the first device with this unit id; owns the map
  std::vector<SimDevice*> unit;  // all devices with this unit id (dev first)
  // Replies once to `query` (`len` bytes, `header_len` = the transport's header size) on
  // `ctx` from the shared map and lets every device see the reply. Returns false, sending
  // nothing, when any device of the unit is silent (the master times out).
  // REQUIRES: the caller holds none of the unit's locks.
  bool answer(_modbus* ctx, const std::uint8_t* query, int len, int header_len);
};

// Groups one bus's devices into slaves by unit id, in configuration order, merging the maps
// of devices that share a unit id into the first one's. Used for RTU lines and TCP buses alike.
// REQUIRES: no server thread runs yet.
std::vector<SimSlave> group_into_slaves(const std::vector<SimDevice*>& on_bus);

// A Modbus TCP bus: one listening socket; each request is answered by the slave its unit
// id (MBAP byte 6) names, or with a gateway-target exception when no slave has it.
struct TcpBusServer {
  config::BusSection bus;
  std::vector<SimSlave> slaves;
  int listen_fd = -1;
  int port = 0;
  void run(std::atomic<bool>& stopping);
};

// One slave on an RTU line, on its own pty behind the line's bridge (one reply per
// request, as from one physical box; see SimSlave).
struct RtuDeviceServer {
  SimSlave slave;
  int master_fd = -1;            // bridge side
  int keep_slave_fd = -1;        // held open so the pty never hangs up
  _modbus* ctx = nullptr;        // libmodbus RTU server on the slave path
  void run(std::atomic<bool>& stopping);
};

struct RtuBusServer {
  config::BusSection bus;
  int master_fd = -1;
  int keep_slave_fd = -1;
  std::string slave_path;  // the path the gateway (or mbpoll) opens
  std::string link;        // symlink we created at bus.serial_device
  std::vector<std::unique_ptr<RtuDeviceServer>> devices;
  void bridge(std::atomic<bool>& stopping);
};

// A simulated taxi meter. The terminal's acknowledgement names only the command it
// answers, never a trip, so per command (0x00E7, 0x00E8, 0x00F2) one frame is in flight:
// the front of its queue, retransmitted until the terminal answers it. The answers are
// checked against the spec's literal ack bytes (devices.cc), not the client's codec.
struct SimMeter {
  config::SerialPortSection cfg;
  std::mutex mu;
  int master_fd = -1;
  int keep_slave_fd = -1;
  std::string slave_path;
  std::string link;
  struct Pending {
    std::uint32_t trip_number = 0;  // 0 for a trip start
    std::vector<std::uint8_t> bytes;
    std::chrono::steady_clock::time_point next_send;
    int sends = 0;
  };
  std::map<std::uint16_t, std::deque<Pending>> queues;  // by CMD
  std::vector<std::uint8_t> rx;  // bytes from the terminal not yet framed
  // Every trip ended, by number: what the meter's store re-sends as 0x00F2.
  std::map<std::uint32_t, std::vector<std::uint8_t>> stored;
  std::vector<std::uint32_t> acked;         // 0x90 on 0x00E8 or 0x00F2, in order
  std::vector<std::uint32_t> acked_stored;  // of those, the ones acked on 0x00F2
  std::vector<std::uint32_t> refused;       // answered 0xFF (the meter stops sending them)
  int trip_starts_acked = 0;
  int trip_starts_refused = 0;
  int status_queries = 0;
  int bad_acks = 0;  // frames on an ack CMD that are not one of the spec's ack frames
  lane::MeterStatus status;  // what a 0x0000 query is answered with
  std::uint32_t next_trip = 1;
  void queue(std::uint16_t cmd, std::uint32_t trip_number, std::vector<std::uint8_t> body);
  // Frames what the terminal sent; answers acks and status queries. REQUIRES: mu held.
  void take_terminal_bytes();
};

struct DevicesSim::Impl {
  Impl();
  ~Impl();
  Status build();
  Status start_http();
  void stop_http();
  void ticker();
  // Vzenith and Dahua push cameras' heartbeats, each every heartbeat_interval_ms and at
  // once after set_silent(false) (next_heartbeat reset).
  void heartbeats();
  // One heartbeat of push camera `d`. REQUIRES: d.mu not held (it sends).
  void heartbeat(SimDevice& d);
  // The plain token of push camera `id` ("" when none was given).
  std::string token_of(const std::string& id);
  void shutdown();
  SimDevice* find(std::string_view id);
  SimMeter* find_meter(std::string_view id);
  std::string lane_of(std::string_view device) const;

  config::Config cfg;
  DevicesSimOptions options;
  std::vector<std::unique_ptr<SimDevice>> devices;
  std::vector<std::unique_ptr<TcpBusServer>> tcp;
  std::vector<std::unique_ptr<RtuBusServer>> rtu;
  std::vector<std::unique_ptr<SimMeter>> meters;
  std::atomic<bool> stopping{false};
  bool stopped = false;
  std::vector<std::thread> threads;
  std::unique_ptr<httplib::Server> http;
  int control_port = 0;
  DevicesSim* owner = nullptr;
  // The gateway's camera receiver (resolved in build()).
  std::string push_host;
  int push_port = 0;
  std::mutex tokens_mu;  // guards options.camera_tokens after start
};

}  // namespace lanegate::sim
