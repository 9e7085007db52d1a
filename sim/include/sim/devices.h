#pragma once
// lanegate-sim devices: simulated lane hardware speaking real Modbus (libmodbus server
// mode) and the JT/T 905 meter link, driven by a small control API.
//
// What it serves, from a lanegate config (the same file the gateway reads):
//   - every TCP [[bus]]: one Modbus TCP server on 127.0.0.1:<port> (0 = ephemeral) that
//     answers each configured device by its unit id;
//   - every RTU [[bus]]: a simulated RS-485 line: one pseudo-terminal for the master
//     (symlinked at the bus' serial_device path) bridged to one pseudo-terminal per device,
//     each served by its own libmodbus RTU context with its own slave id. The bridge
//     frames each request (CRC checked) and passes it to the addressed slave only; a
//     request for an unknown or silent slave goes unanswered, as on a multi-drop bus;
//   - every [[meter]]: a pseudo-terminal symlinked at the meter's device path, on which a
//     JT/T 905 meter sends trip starts (0x00E7), end-of-trip records (0x00E8) and stored
//     records re-sent (0x00F2), each retransmitted until the terminal answers it with the
//     spec's ack frame (checked byte for byte against the spec's literal frames), and
//     answers the terminal's 0x0000 status query with a status frame;
//   - every [[reader]]: a pseudo-terminal symlinked at the reader's device path, on which
//     the payment-code reader writes one scanned code per line (CR LF);
//   - every push camera ([[device]] kind = "camera" with protocol vzenith | hikvision |
//     dahua | generic, no bus): an HTTP client of the gateway's camera receiver. A vehicle
//     is POSTed in the vendor's wire format (sim/cameras.h, images included) with the
//     camera's plain token (DevicesSimOptions::camera_tokens: the config holds only its
//     SHA-256); Vzenith and Dahua cameras also send heartbeats. The gateway's address is
//     DevicesSimOptions::gateway_host/gateway_port, by default the config's [cameras]
//     listener, else its [api] listener.
// Devices honour their config's unit id, byte/word order and register overrides.
//
// Control API (HTTP, 127.0.0.1 only; JSON bodies; errors are 4xx {"error": "..."}):
//   POST /vehicle            {"camera"|"lane", "plate", "colour" (0..6), "confidence",
//                             "class", "time" (unix s, default now)}  -> {"sequence"}
//                             (a push camera: the loop goes present, then the push is
//                             sent; a failed push is a 4xx/5xx {"error"} naming the camera)
//   POST /vehicle/leave      {"lane"}                     loop detector back to empty
//   POST /camera/{id}/token  {"token"}                    a push camera's plain push token
//   POST /trip               {"meter", "fare_fen", "trip_number"?, "plate"?,
//                             "boarding"? ("YYYY-MM-DDThh:mm"), "alighting"? ("hh:mm"),
//                             "distance_m"?, "payment_type"?}  -> {"trip_number"}
//   POST /meter/{id}/raw     {"hex"}                      raw bytes on the meter line
//   POST /meter/{id}/start   {"occupied_at"? "YYYY-MM-DDThh:mm:ss"}  trip started (0x00E7)
//   POST /meter/{id}/resend  {"trip_number"?}             stored trips re-sent as 0x00F2
//                                                         -> {"trip_numbers"}
//   POST /meter/{id}/device_state {"state"}               device state in status replies
//   POST /reader/{id}/scan   {} | {"code"} | {"raw"}      a passenger's code scanned: a fresh
//                             valid code (returned as {"code"}), the given `code` + CR LF,
//                             or `raw` bytes as given, on the reader line
//   POST /roadside           {"device"|"lane", "entry_station", "entry_time", "class",
//                             "contract_id"}              -> {"sequence"}
//   POST /device/{id}/silent | /device/{id}/return        stop / resume answering
//   POST /barrier/{id}/stuck | /barrier/{id}/free         ignore / honour open commands
//   GET  /state              {"devices":{id:{...}}, "meters":{id:{acked, acked_stored,
//                             refused, unacked, trip_starts_acked, status_queries,
//                             bad_acks, device_state, path}}, "tcp_ports":{...}}
//
// Barrier model: writing 1 to the open coil is accepted and reset by the controller;
// unless stuck, the barrier leaves `closed` at once (moving), reports `opened` after
// barrier_open_delay_ms, stays open barrier_hold_ms, then lowers (moving) and reports
// `closed` after barrier_open_delay_ms; a new open while lowering re-raises.
//
// A push camera's device entry in GET /state adds {"protocol", "pushes", "push_failures",
// "last_event", "relay_pulses", "relay_kept_shut", "bad_replies", "heartbeats",
// "heartbeat_failures", "last_error"}.
//
// Lifecycle: DevicesSim::start() -> running -> stop() (also from the destructor).
// Threading: one thread per TCP bus, one per RTU device plus one bridge per RTU bus, one
// ticker (barrier timers, meter retransmission, meter acks), one HTTP thread, and one
// heartbeat thread when a Vzenith or Dahua push camera is configured (a gateway that does
// not answer must not stall the barrier timers). vehicle_arrives() for a push camera sends
// the push on the calling thread. All public methods are thread-safe.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace lanegate::sim {

struct DevicesSimOptions {
  int control_port = 0;  // -1: no HTTP control server (in-process tests)
  int barrier_open_delay_ms = 300;
  int barrier_hold_ms = 3000;
  int loop_hold_ms = 0;  // 0: loop stays occupied until /vehicle/leave
  int meter_retransmit_ms = 500;
  int utc_offset_minutes = 480;  // for meter civil times
  // Push cameras. The gateway's camera receiver: empty host / port 0 take the config's
  // [cameras] listen_address/listen_port when [cameras] listen_address is set, else its
  // [api] listener (a TLS-only API then refuses the plain-HTTP pushes, reported per push).
  std::string gateway_host;
  int gateway_port = 0;
  // Camera device id -> its plain push token (the config holds only token_sha256). A push
  // camera without one fails each push with kInvalidArgument naming it.
  std::map<std::string, std::string> camera_tokens;
  // Vzenith and Dahua heartbeats; 0: none. A camera whose heartbeat_timeout_s is shorter
  // than three intervals beats every third of it (set up for the gateway it talks to).
  int heartbeat_interval_ms = 30'000;
  // Limit for one push and its reply; a Vzenith push waits at least reply_wait_ms + 2 s
  // (the gateway holds the reply until the lane decided).
  int push_timeout_ms = 5000;
};

struct VehicleArrival {
  std::string camera;  // camera device id, or empty to use `lane`'s camera
  std::string lane;
  std::string plate;  // UTF-8; encoded with the camera's configured encoding
  int colour = 0;     // register value 0..6 (out-of-range values are written as is)
  int confidence = 950;
  int vehicle_class = 1;
  std::optional<std::int64_t> time;  // unix seconds, default now
  // Raw plate bytes written instead of encoding `plate` (tests of rejected reads).
  std::optional<std::string> raw_text;
};

// What a push camera did (the HTTP client side of sim/cameras.h).
struct PushCameraState {
  std::string protocol;            // vzenith | hikvision | dahua | generic
  std::int64_t pushes = 0;         // recognitions the gateway answered 2xx
  std::int64_t push_failures = 0;  // not answered, or answered non-2xx
  std::uint64_t last_event = 0;    // the event number (Vzenith plateid, ...) of the last push
  // Vzenith: replies with "info":"ok" (the camera pulses its gate relay) and with "no";
  // replies that break the spec (wrong plateid, not JSON, ...).
  std::int64_t relay_pulses = 0;
  std::int64_t relay_kept_shut = 0;
  std::int64_t bad_replies = 0;
  std::optional<bool> last_relay;  // the last Vzenith reply's decision
  std::int64_t heartbeats = 0;     // answered 2xx
  std::int64_t heartbeat_failures = 0;
  std::string last_error;  // of the last failed push or heartbeat ("" after a success)
};

struct SimTrip {
  std::string meter;
  std::int64_t fare_fen = 0;                 // whole 0.1 yuan (multiple of 10)
  std::optional<std::uint32_t> trip_number;  // default: next
  std::string plate = "B12345";
  std::string boarding = "";   // "YYYY-MM-DDThh:mm", default now - 20 min (local)
  std::string alighting = "";  // "hh:mm", default now (local)
  std::int64_t distance_m = 5300;
  int payment_type = 0;
};

struct RoadsideEntry {
  std::string device;  // or lane
  std::string lane;
  std::uint32_t entry_station = 0;
  std::int64_t entry_time = 0;
  int vehicle_class = 1;
  std::string contract_id;
};

struct BarrierSnapshot {
  int open_commands = 0;
  bool opened = false;
  bool closed = true;
  bool stuck = false;
};

// What the simulated meter saw of the terminal (checked against the spec's ack bytes).
struct MeterLinkState {
  std::vector<std::uint32_t> acked;         // trip numbers answered 0x90 (0x00E8 or 0x00F2)
  std::vector<std::uint32_t> acked_stored;  // of those, answered on 0x00F2
  std::vector<std::uint32_t> refused;       // answered 0xFF
  std::vector<std::uint32_t> unacked;       // records still retransmitted
  int trip_starts_acked = 0;
  int trip_starts_refused = 0;
  int trip_starts_unacked = 0;
  int status_queries = 0;
  int bad_acks = 0;  // frames on an ack CMD that are not exactly a spec ack frame
  int device_state = 0;
};

class DevicesSim {
 public:
  // Starts every server. Errors name the config field (bus, device, meter) that failed:
  // a TCP port in use, a serial_device path that exists and is not a symlink, ...
  [[nodiscard]] static Result<std::unique_ptr<DevicesSim>> start(const config::Config& cfg,
                                                                 DevicesSimOptions options = {});
  ~DevicesSim();
  DevicesSim(const DevicesSim&) = delete;
  DevicesSim& operator=(const DevicesSim&) = delete;

  // Stops every thread, closes the ptys and removes the symlinks it created. Idempotent.
  void stop();

  // HTTP control port (0 when disabled).
  int control_port() const;
  // Bound TCP port of a TCP bus (resolves port 0).
  [[nodiscard]] Result<int> tcp_port(std::string_view bus) const;
  // Path of the slave-side pty of an RTU bus / a meter / a reader (what the symlink points to).
  [[nodiscard]] Result<std::string> pty_path(std::string_view bus_or_meter) const;

  // The control operations (same as the HTTP API).
  // A vehicle at a lane's camera: returns the camera's record sequence number. A Modbus
  // camera gets the record in its registers (read later by polling), then the lane's loop
  // goes present. A push camera: the loop goes present, then the recognition is POSTed in
  // the camera's vendor format with a fresh event number (Vzenith plateid = the returned
  // sequence plus a per-start base) and images; the call blocks until the gateway answers
  // (a Vzenith reply comes once the lane decided, at most reply_wait_ms). Errors name the
  // camera: no answer (kUnavailable), a non-2xx answer (kRejected), a Vzenith reply that
  // breaks the spec (kProtocol; the record was delivered), no token (kInvalidArgument,
  // nothing sent), a silent camera (kUnavailable, nothing sent). record_read() is the
  // sequence once the gateway answered 2xx.
  [[nodiscard]] Result<std::uint16_t> vehicle_arrives(const VehicleArrival& v);
  // Sets (replaces) a push camera's plain token. kNotFound for no such push camera.
  [[nodiscard]] Status set_camera_token(std::string_view camera, std::string token);
  [[nodiscard]] Result<PushCameraState> push_camera(std::string_view camera) const;
  [[nodiscard]] Status vehicle_leaves(std::string_view lane);
  [[nodiscard]] Result<std::uint32_t> end_trip(const SimTrip& trip);
  [[nodiscard]] Status meter_raw(std::string_view meter, std::span<const std::uint8_t> bytes);
  // The meter goes occupied: a 0x00E7 frame with `occupied_at` ("YYYY-MM-DDThh:mm:ss",
  // default now; impossible values are sent as given), retransmitted until acked.
  [[nodiscard]] Status start_trip(std::string_view meter, std::string_view occupied_at = {});
  // Re-sends the stored trip `trip` (default: every trip ended so far) as 0x00F2.
  // Returns the trip numbers queued; kNotFound for an unknown meter or trip.
  [[nodiscard]] Result<std::vector<std::uint32_t>> resend_stored(
      std::string_view meter, std::optional<std::uint32_t> trip = std::nullopt);
  // The device state the meter reports in its status replies (0 ok, 4 trip store full...).
  [[nodiscard]] Status set_meter_device_state(std::string_view meter, std::uint8_t state);
  [[nodiscard]] Result<MeterLinkState> meter_link(std::string_view meter) const;
  // A code scanned at a [[reader]]: writes `line` + "\r\n" on its pty (no validation:
  // tests send bad codes on purpose). kNotFound for an unknown reader.
  [[nodiscard]] Status reader_scan(std::string_view reader, std::string_view line);
  // Scans a fresh valid payment code (18 digits, WeChat prefix 13) and returns it.
  [[nodiscard]] Result<std::string> scan_payment_code(std::string_view reader);
  // Raw bytes on a reader line (partial or overlong lines).
  [[nodiscard]] Status reader_raw(std::string_view reader, std::string_view bytes);
  [[nodiscard]] Result<std::uint16_t> roadside_entry(const RoadsideEntry& e);
  // A silent Modbus device stops answering; a silent push camera stops pushing and sending
  // heartbeats, and sends a heartbeat at once when it returns.
  [[nodiscard]] Status set_silent(std::string_view device, bool silent);
  [[nodiscard]] Status set_barrier_stuck(std::string_view device, bool stuck);

  [[nodiscard]] Result<BarrierSnapshot> barrier(std::string_view device) const;
  // Display text decoded from GBK ("" when none written yet).
  [[nodiscard]] Result<std::string> display_text(std::string_view device) const;
  // Trip numbers the gateway acknowledged / still unacknowledged on a meter.
  [[nodiscard]] Result<std::vector<std::uint32_t>> meter_acked(std::string_view meter) const;
  [[nodiscard]] Result<std::vector<std::uint32_t>> meter_unacked(std::string_view meter) const;
  // Every text written to a display, in order, from index `from` (decoded from GBK; the
  // register holds only the latest). In process only, like the two below.
  [[nodiscard]] Result<std::vector<std::string>> display_texts(std::string_view device,
                                                               std::size_t from = 0) const;
  // How many texts were written to a display so far (the next index display_texts gives).
  [[nodiscard]] Result<std::size_t> display_writes(std::string_view device) const;
  // The sequence number of the last camera / roadside-unit record the master read in full
  // (0 before any): equal to the number vehicle_arrives / roadside_entry returned means the
  // gateway has the record and the device may take the next vehicle's.
  [[nodiscard]] Result<std::uint16_t> record_read(std::string_view device) const;
  // Modbus requests the device answered (tests: "polling resumed").
  [[nodiscard]] Result<std::int64_t> requests_answered(std::string_view device) const;
  // JSON of GET /state.
  std::string state_json() const;

  struct Impl;

 private:
  explicit DevicesSim(std::unique_ptr<Impl> impl);
  [[nodiscard]] Status open_readers(const config::Config& cfg);
  void close_readers();
  std::unique_ptr<Impl> impl_;
  struct ReaderLines;  // the [[reader]] ptys (devices.cc)
  std::unique_ptr<ReaderLines> readers_;
};

// `lanegate-sim devices --config FILE [--control-port N] [--gateway HOST:PORT]
//   [--camera-token ID=TOKEN]... [--heartbeat-s N]`: prints
// "ready control=http://127.0.0.1:PORT" on stdout when serving, runs until SIGTERM or
// SIGINT. Returns the process exit code (2 for usage or config errors).
int run_devices_sim(std::span<const std::string> args);

}  // namespace lanegate::sim
