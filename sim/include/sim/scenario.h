#pragma once
// The demo scenario: the simulated world around a real lanegated.
//
// Starts the provider sandbox, the invoicing sandbox, the taxi regulator sandbox (with
// [regulator] enabled) and the lane devices in this process, starts `lanegated` as a child
// process on the same configuration, then plays traffic: vehicles entering and leaving the
// parking lot (at Modbus cameras and at HTTP push cameras, whose demo-only plain tokens the
// scenario holds while the config holds their SHA-256), vehicles at the toll exit, taxi
// trips whose passengers pay by payment code, by the Native QR, by card or cash at the meter
// (TaxiPlan), passengers claiming invoices for settled charges. In the middle the uplink is
// cut (the sandbox refuses connections) and restored. Afterwards it waits for the gateway's outbox
// to drain and for every charge to settle, and accounts for every fen: each provider
// charge lanegate recorded must exist exactly once at the sandbox with the same amount and
// final state, the sandbox must hold nothing else, every observed passage has exactly one
// transaction, every charge names the contract or account of the vehicle it is for at the
// fare that vehicle owes, every trip is settled once as its own meter's (one SUCCESS
// payment kept at the sandbox for its fare, or its CASH row; any other payment the sandbox
// kept for it is in lanegate's refund_due list) and uploaded to the regulator, and every
// claimed invoice is issued.
//
// With --kill N the gateway is SIGKILLed N times at random moments and restarted (the
// crash-recovery proof); the accounting must still balance. With --chaos the run is the
// chaos scenario of sim/chaos.h instead.
//
// The configuration is a lanegate config (config/examples/demo.toml). The scenario
// rewrites its /tmp/lanegate-demo paths to --workdir and shifts every port by
// --port-offset, so several runs can share a machine.
//
// ScenarioWorld is the reusable part (the demo and the chaos run share it): it owns the
// work directory, the sandboxes, the devices and the lanegated child process.
//   Lifecycle: start() -> running (traffic, faults) -> drain() -> account() -> destroyed
//   (lanegated gets SIGTERM, the sandboxes and devices stop).
//   Invariants:
//     1. At most one lanegated child runs; restart_gateway() reaps the old one first.
//     2. Every vehicle the world drove is recorded in passages() with what the lane
//        showed (pass, fallback or no decision); every trip ended in trips_ended(), with
//        its meter, number, boarding minute and fare; every vehicle sent to a toll exit in
//        the chaos run in toll_drives(), with its contract and the fare it owes.
//     3. Invoices are claimed only for transactions lanegate and the sandbox both hold as
//        SUCCESS; each claim is recorded in claims() with its token.
//     4. account() judges every charge against that ground truth: the contract or account
//        it names and its amount must be those of the vehicle or trip the world sent.
// Threading: one thread (the scenario's) calls everything; the sandboxes and devices run
// their own threads internally.

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/money.h"
#include "sim/devices.h"
#include "sim/invoicing_sandbox.h"
#include "sim/provider_sandbox.h"
#include "sim/regulator_sandbox.h"

namespace lanegate::sim {

// `lanegate-sim scenario --config FILE --bin-dir DIR [--workdir DIR] [--port-offset N]
//   [--vehicles N] [--trips N] [--claims N] [--kill N] [--seed N] [--no-outage] [--quiet]
//   [--chaos [--duration S] [--disk-full MODE] [--clock-jump-s N]]`
// Prints a progress line while running and a summary at the end. Exit code 0 when every
// fen is accounted for, 1 when not (the summary says what), 2 for usage errors.
int run_scenario(std::span<const std::string> args);

struct ScenarioOptions {
  std::filesystem::path config;
  std::filesystem::path bin_dir;
  std::filesystem::path workdir = "/tmp/lanegate-demo";
  int port_offset = 0;
  int vehicles = 200;
  int trips = 20;
  int claims = 10;  // invoices passengers claim (when the gateway serves claims)
  int kills = 0;
  unsigned seed = 20261122;
  bool outage = true;
  bool quiet = false;
  std::string token = "demo-operator-token";
  bool chaos = false;
  int duration_s = 180;  // chaos: length of the traffic phase
  // Chaos: where the database's disk-full is injected: "auto", "pagecount", "tmpfs", "off".
  std::string disk_full = "auto";
  // Chaos: how far lanegated's wall clock jumps (alternately forward and back). Beyond the
  // provider's ±300 s signature window every signed exchange is refused until it returns.
  int clock_jump_s = 600;
};

// Parses the scenario's arguments; nullopt (after printing the usage) on a usage error.
std::optional<ScenarioOptions> parse_scenario_options(std::span<const std::string> args);

struct ScenarioVehicle {
  std::string plate;
  std::string colour_name;  // provider name
  int colour_code = 0;      // camera register value
  bool bound = true;        // has a binding at the sandbox
  bool overdue = false;
  std::string contract_id;  // ETC contract at the sandbox
  std::string openid;       // its account at the sandbox ("" when not bound)
};

// What a lane showed for one vehicle.
enum class LaneOutcome { kPass, kFallback, kNoDecision };

struct ObservedPassage {
  std::string lane;
  std::string plate;
  LaneOutcome outcome = LaneOutcome::kNoDecision;
  bool charged_lane = false;  // an exit or toll lane: a pass there has a transaction
  std::int64_t fee_fen = -1;  // the fee the display showed (-1: none shown); 0 is a free pass
  // Read from the display after the call that sent the vehicle returned (chaos toll
  // traffic): the decision may be older than the moment it was recorded here.
  bool late = false;
};

// The chaos run's toll-exit cases (issue 13). Each is a way a real lane pairs the plate
// camera's read with the roadside unit's record wrongly when it pairs by "latest".
enum class TollCase {
  kNormal,    // plate and record, in random order
  kNoPlate,   // the record only: the camera missed the plate, the attendant takes the
              // vehicle; its record must never be charged to a later vehicle
  kNoRecord,  // the plate only (no OBU, a card fault): nobody's contract may be charged
  kQueued,    // one of several vehicles back to back while the lane is still deciding
};

// Ground truth of one vehicle the chaos run sent to a toll exit, and what the lane showed.
struct TollDrive {
  std::string lane;
  std::string plate;
  std::string contract_id;  // the contract its OBU carries
  std::string openid;       // the account behind it at the sandbox ("" when not bound)
  TollCase kind = TollCase::kNormal;
  std::string group;  // "queue 2/3" for a queued vehicle
  std::uint32_t entry_station = 0;
  int vehicle_class = 1;
  std::int64_t fare_fen = -1;  // the fare its record owes (-1: it sent no record)
  bool plate_shown = false;    // the camera took its plate
  bool record_sent = false;    // the roadside unit took its record
  bool plate_read = false;     // lanegated read that plate record (device handshake)
  bool record_read = false;    // lanegated read that roadside record
  // Its plate and record reached lanegated before the lane showed the previous queued
  // vehicle's decision: it met a busy lane.
  bool met_busy_lane = false;
  bool database_fault = false;  // a disk-full was on at some time while it was at the lane
  LaneOutcome outcome = LaneOutcome::kNoDecision;
  std::int64_t fee_fen = -1;  // the fee the display showed it (-1: none)
  // Resolution from the display's history (ScenarioWorld internals).
  std::size_t display_from = 0;
  std::chrono::steady_clock::time_point deadline{};
  int fault_epoch = 0;
  bool resolved = false;
};

// How the simulated passenger of a taxi trip means to pay (the world's plan; what happens
// depends on the uplink and the faults: lanegate's records say how it was paid).
enum class TaxiPlan {
  kCode,            // scans a payment code while the screen shows the fare
  kCodeUserpaying,  // the same with a code that stays USERPAYING a few seconds (a password)
  kQr,              // waits for the Native QR, then pays it (the sandbox's admin route)
  kCashStart,       // pays the driver; the meter's next trip start (0x00E7) ends the trip
  kCashTimeout,     // pays the driver; the trip's payment window (qr_wait_s) runs out
  kCard,            // paid by card at the meter (payment type 0x01): settled at once
};

// One trip a meter ended, and what the world did and saw while it was open.
struct EndedTrip {
  std::string meter;
  std::uint32_t trip_number = 0;
  std::string boarding;  // "YYYY-MM-DDThh:mm", local time, as the meter sent it
  std::int64_t fare_fen = 0;
  int payment_type = 0;
  // Ended together with another meter's trip of the same number and boarding minute.
  bool twin = false;
  std::string lane;  // the taxi lane of its meter
  // lanegate's trip key (gateway id, meter, boarding, number hashed as site_taxi.cc does):
  // its records are "<key>C" (paid at the meter) and "<key>P01"/"<key>Q01"... (orders).
  std::string key;
  TaxiPlan plan = TaxiPlan::kCashStart;
  // Progress (ScenarioWorld internals): acted = the code was scanned / the QR paid / the
  // trip start sent; forced = the world sent a trip start because nothing settled in time.
  bool acted = false;
  bool forced = false;
  bool resolved = false;  // lanegate's records show the trip settled
  int scans = 0;
  std::string paid_order;  // the Native order the world paid
  std::string seen;        // the passenger screen's last view of it ("paid native", ...)
  std::int64_t screen_before = -1;  // the screen's version before the trip was sent
  std::chrono::steady_clock::time_point ended_at{}, next_check{};
};

struct InvoiceClaim {
  std::string out_trade_no;
  std::string token;
  std::string state;  // last state the claim API reported ("CLAIMED", "ISSUED", ...)
};

// Result of one HTTP call to lanegated (status 0: no answer).
struct ApiAnswer {
  int status = 0;
  std::string body;
};

struct ScenarioTotals {
  std::int64_t provider_charges = 0;
  Money charged, settled_ours, settled_theirs, cash, arrears;
  std::int64_t transactions = 0;
  std::int64_t invoices_claimed = 0, invoices_issued = 0, invoices_pending = 0;
  // Charges of fallen-back passages lanegated left open (refused by the provider and
  // parked for an operator): no money moved, but they never reach a final state.
  std::int64_t open_after_fallback = 0;
  // Taxi trips by how lanegate settled them: by a payment-code order, by a Native QR
  // order, or paid at the meter (by the CASH row's reason: card, offline, next trip
  // start / record, window passed, restart).
  std::int64_t taxi_code = 0, taxi_code_userpaying = 0, taxi_qr = 0, taxi_meter = 0;
  std::map<std::string, std::int64_t> taxi_meter_reasons;
  Money taxi_paid;  // the fares paid electronically (each one SUCCESS order at the sandbox)
  // Sandbox payments kept for a trip settled otherwise, each in lanegate's refund_due list.
  std::int64_t taxi_refund_due = 0;
  // Regulator: trips uploaded (each ended trip at least once) and duplicate uploads.
  std::int64_t regulator_uploaded = 0, regulator_duplicates = 0;
};

class ScenarioWorld {
 public:
  // Makes the work directory, the PKI and the config, starts the sandboxes and devices
  // and lanegated (with `gateway_env` added to its environment), and waits until it is
  // healthy. Errors say which part failed.
  [[nodiscard]] static Result<std::unique_ptr<ScenarioWorld>> start(
      const ScenarioOptions& options,
      std::vector<std::pair<std::string, std::string>> gateway_env = {});
  ~ScenarioWorld();
  ScenarioWorld(const ScenarioWorld&) = delete;
  ScenarioWorld& operator=(const ScenarioWorld&) = delete;

  const ScenarioOptions& options() const { return options_; }
  const config::Config& config() const { return cfg_; }
  const std::filesystem::path& config_file() const { return config_file_; }
  std::filesystem::path gateway_log() const { return options_.workdir / "lanegated.log"; }
  ProviderSandbox& provider() { return *provider_; }
  DevicesSim& devices() { return *devices_; }
  InvoicingSandbox* invoicing() { return invoicing_.get(); }
  // The taxi regulator platform ([regulator] enabled), nullptr otherwise.
  RegulatorSandbox* regulator() { return regulator_.get(); }
  std::mt19937& rng() { return rng_; }

  // ---- lanegated ----
  // Stops lanegated with `signal` (SIGKILL: a crash), starts it again and waits until it
  // answers /healthz. False when it does not come back within 10 s.
  [[nodiscard]] bool restart_gateway(int signal);
  [[nodiscard]] bool gateway_running();
  pid_t gateway_pid() const { return pid_; }
  // Sends a signal without waiting (SIGHUP: reload the config).
  void signal_gateway(int signal);
  // lanegated's log from byte `from` (the whole log with 0).
  std::string gateway_log_text(std::uintmax_t from = 0) const;

  // ---- lanegated's API (operator token) ----
  std::optional<boost::json::object> api_get_json(const std::string& path);
  ApiAnswer api_get(const std::string& path, bool with_token = true);
  ApiAnswer api_post(const std::string& path, const std::string& body, bool with_token = true);
  bool healthy();

  // ---- traffic ----
  // Lanes by mode, from the config.
  const std::vector<std::string>& entry_lanes() const { return entry_lanes_; }
  const std::vector<std::string>& exit_lanes() const { return exit_lanes_; }
  const std::vector<std::string>& toll_lanes() const { return toll_lanes_; }
  // The devices (camera, loop, barrier, display, roadside unit) a lane uses.
  std::vector<std::string> lane_devices(const std::string& lane) const;
  // Lanes the traffic must avoid (a silenced camera: no vehicle would be read there).
  void set_lane_closed(const std::string& lane, bool closed);

  // Drives vehicle number i of the plan: every 10th a toll exit, the others through the
  // lot (a parked vehicle leaves once three others have entered); a taxi trip every
  // vehicles/trips vehicles. The vehicle waits up to 4 s for the lane's decision and is
  // read again up to twice when none comes.
  // Chaos (options().chaos): every 5th is a toll slot that plays the next TollCase of a
  // fixed cycle when the toll lane is free (else the vehicle uses the lot). Its plate and
  // record are each written once lanegated has read the previous one from that device (a
  // device holds one record), and its decision is read later from the display's history,
  // so the lot's traffic goes on meanwhile.
  void drive_next(int i);
  // One vehicle at this lane now, even if the lane is closed to the normal traffic (an
  // entry takes the next plate of the fleet, an exit the longest-parked vehicle).
  void drive_one(const std::string& lane);
  // One more taxi trip (fare chosen at random) with the next TaxiPlan of a fixed cycle
  // (the last of options().trips in the demo lets its payment window run out). With two or
  // more taxi meters every 4th call ends a trip on the first two meters at once, with the
  // same trip number and boarding minute (two meters one gateway reads must never be taken
  // for each other); the calls between alternate single trips on them. A meter whose
  // previous trip is still open takes none: false when no trip was ended.
  bool end_taxi_trip();
  // Plays the open trips' passengers one step (scan a code when the screen shows the fare,
  // pay a Native order the sandbox holds as NOTPAY, send the next trip start) and notes
  // the trips lanegate settled. Cheap; called between vehicles and while draining.
  void taxi_tick();
  // Trips ended whose settlement lanegate has not recorded yet.
  int taxi_open() const;
  // Chaos: a disk-full is on (true) or over (false). Toll vehicles at the lane meanwhile
  // may be sent to the attendant without a fare (attendant mode), which is no pairing
  // error.
  void set_database_fault(bool on);
  // The rest of the lot leaves.
  void empty_lot();
  // Claims invoices for up to `n` settled charges not yet claimed, through lanegated's
  // public claim API. Returns how many were claimed; 0 also when the gateway does not
  // serve claims (see claims_supported()).
  int claim_invoices(int n);
  // Whether lanegated answers the receipt route (probed once per call until true).
  bool claims_supported();

  const std::vector<ObservedPassage>& passages() const { return passages_; }
  const std::vector<EndedTrip>& trips_ended() const { return trips_; }
  const std::vector<TollDrive>& toll_drives() const { return toll_drives_; }
  const std::vector<InvoiceClaim>& claims() const { return claims_; }
  int entries() const { return entries_; }
  int exits() const { return exits_; }
  int tolls() const { return tolls_; }
  std::int64_t peak_queue() const { return peak_queue_; }
  // Status poll, at most every 300 ms (peak queue depth).
  void poll_status();

  // ---- the end ----
  // Waits for the decisions of the toll vehicles still at the lane, then until the outbox
  // is empty and no charge is open, and (with claims) until every claimed invoice is
  // issued. Returns the final status, nullopt on timeout.
  std::optional<boost::json::object> drain(std::chrono::seconds limit, bool progress);
  // Compares lanegate with the sandboxes and both with the world's ground truth: every
  // charge's contract / account and amount are the vehicle's or trip's the world sent.
  // Every violation is one line in the result, naming the vehicle and the charge.
  std::vector<std::string> account(ScenarioTotals& totals);
  // Audit: seals and exports today's settlement package with the `lanegate` CLI and
  // verifies it (`lanegate audit verify`; docs/AUDIT.md's reference verifier when the CLI
  // cannot run, which is added to `notes`). Empty when it verifies, else what failed.
  // REQUIRES: lanegated stopped or idle (the CLI opens the database beside it).
  std::vector<std::string> verify_ledger(std::vector<std::string>* notes = nullptr);

 private:
  ScenarioWorld() = default;
  bool start_gateway();
  void stop_gateway(int signal);
  bool wait_healthy();
  void drive(const std::string& lane, const ScenarioVehicle& v, bool charged_lane);
  std::string pick_lane(const std::vector<std::string>& lanes, int& counter) const;
  // Chaos toll traffic (see drive_next).
  bool toll_lane_free(const std::string& lane);
  void drive_toll_case(const std::string& lane);
  void resolve_toll(bool wait_all);
  void check_attribution(const std::map<std::string, boost::json::object>& ours,
                         const std::map<std::string, SandboxTransaction>& at_sandbox,
                         std::vector<std::string>& problems) const;
  // Every fen of the taxi trips (sim/scenario.cc, "taxi accounting") and their uploads.
  void check_taxi(const std::map<std::string, boost::json::object>& ours,
                  std::vector<std::string>& problems, ScenarioTotals& totals);
  void check_regulator(std::vector<std::string>& problems, ScenarioTotals& totals) const;
  void taxi_step(EndedTrip& t);
  bool taxi_settled(EndedTrip& t);
  // "plate (vehicle #i, contract, account" + with `story` what each toll lane saw of it.
  std::string describe_vehicle(const std::string& plate, bool story) const;
  static std::string toll_case_name(const TollDrive& d);

  ScenarioOptions options_;
  config::Config cfg_;
  std::filesystem::path config_file_;
  std::filesystem::path pki_;
  std::vector<std::pair<std::string, std::string>> gateway_env_;
  pid_t pid_ = -1;
  std::unique_ptr<ProviderSandbox> provider_;
  std::unique_ptr<DevicesSim> devices_;
  std::unique_ptr<InvoicingSandbox> invoicing_;
  std::unique_ptr<RegulatorSandbox> regulator_;
  struct Http;
  std::unique_ptr<Http> http_;
  std::mt19937 rng_;

  std::vector<ScenarioVehicle> fleet_;
  std::vector<std::string> entry_lanes_, exit_lanes_, toll_lanes_;
  std::map<std::string, bool> closed_lanes_;
  std::vector<std::string> meters_;  // every taxi lane's meter, in config order
  std::map<std::string, std::uint32_t> next_trip_;
  std::map<std::string, std::string> meter_lane_, meter_reader_;  // meter -> lane, code reader
  std::map<std::string, std::size_t> meter_open_;  // meter -> its open trip in trips_
  std::map<std::string, std::int64_t> lane_tx_after_;  // lane -> rows of settled trips up to this id
  int trip_calls_ = 0;
  int plans_ = 0;
  std::uint64_t paycodes_ = 0;
  std::vector<std::uint32_t> toll_entries_;
  struct TollFareRow {
    std::string lane;
    std::uint32_t entry_station = 0;
    int vehicle_class = 1;
    std::int64_t fare_fen = 0;
  };
  std::vector<TollFareRow> toll_fares_;  // every fare to a toll lane's station
  std::map<std::string, std::size_t> fleet_by_plate_, fleet_by_contract_;
  std::vector<TollDrive> toll_drives_;
  int toll_case_ = 0;
  std::chrono::steady_clock::time_point toll_quiet_until_{};
  int gateway_starts_ = 0, toll_polled_after_start_ = -1;
  bool database_fault_ = false;
  int database_fault_epoch_ = 0;
  std::map<std::string, const config::LaneSection*> lane_cfg_;
  std::deque<ScenarioVehicle> parked_;
  std::size_t next_plate_ = 0;
  int entries_ = 0, exits_ = 0, tolls_ = 0;
  int entry_rr_ = 0, exit_rr_ = 0;
  std::int64_t peak_queue_ = 0;
  std::chrono::steady_clock::time_point last_status_poll_{};
  std::vector<ObservedPassage> passages_;
  std::vector<EndedTrip> trips_;
  std::vector<InvoiceClaim> claims_;
  std::map<std::string, bool> claimed_;  // out_trade_no -> claimed
  bool claims_supported_ = false;
};

}  // namespace lanegate::sim
