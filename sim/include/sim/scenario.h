#pragma once
// The demo scenario: the simulated world around a real lanegated.
//
// Starts the provider sandbox, the invoicing sandbox and the lane devices in this process,
// starts `lanegated` as a child process on the same configuration, then plays traffic:
// vehicles entering and leaving the parking lot, vehicles at the toll exit, taxi trips,
// passengers claiming invoices for settled charges. In the middle the uplink is cut (the
// sandbox refuses connections) and restored. Afterwards it waits for the gateway's outbox
// to drain and for every charge to settle, and accounts for every fen: each provider
// charge lanegate recorded must exist exactly once at the sandbox with the same amount and
// final state, the sandbox must hold nothing else, every observed passage has exactly one
// transaction, and every claimed invoice is issued.
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
//        showed (pass, fallback or no decision); every trip ended in trips_ended().
//     3. Invoices are claimed only for transactions lanegate and the sandbox both hold as
//        SUCCESS; each claim is recorded in claims() with its token.
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
};

// What a lane showed for one vehicle.
enum class LaneOutcome { kPass, kFallback, kNoDecision };

struct ObservedPassage {
  std::string lane;
  std::string plate;
  LaneOutcome outcome = LaneOutcome::kNoDecision;
  bool charged_lane = false;  // an exit or toll lane: a pass there has a transaction
  std::int64_t fee_fen = -1;  // the fee the display showed (-1: none shown); 0 is a free pass
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
  void drive_next(int i);
  // One vehicle at this lane now, even if the lane is closed to the normal traffic (an
  // entry takes the next plate of the fleet, an exit the longest-parked vehicle).
  void drive_one(const std::string& lane);
  // One more taxi trip (fare chosen at random).
  void end_taxi_trip();
  // The rest of the lot leaves.
  void empty_lot();
  // Claims invoices for up to `n` settled charges not yet claimed, through lanegated's
  // public claim API. Returns how many were claimed; 0 also when the gateway does not
  // serve claims (see claims_supported()).
  int claim_invoices(int n);
  // Whether lanegated answers the receipt route (probed once per call until true).
  bool claims_supported();

  const std::vector<ObservedPassage>& passages() const { return passages_; }
  const std::vector<std::uint32_t>& trips_ended() const { return trips_; }
  const std::vector<InvoiceClaim>& claims() const { return claims_; }
  int entries() const { return entries_; }
  int exits() const { return exits_; }
  int tolls() const { return tolls_; }
  std::int64_t peak_queue() const { return peak_queue_; }
  // Status poll, at most every 300 ms (peak queue depth).
  void poll_status();

  // ---- the end ----
  // Waits until the outbox is empty and no charge is open, and (with claims) until every
  // claimed invoice is issued. Returns the final status, nullopt on timeout.
  std::optional<boost::json::object> drain(std::chrono::seconds limit, bool progress);
  // Compares lanegate with the sandboxes. Every violation is one line in the result.
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

  ScenarioOptions options_;
  config::Config cfg_;
  std::filesystem::path config_file_;
  std::filesystem::path pki_;
  std::vector<std::pair<std::string, std::string>> gateway_env_;
  pid_t pid_ = -1;
  std::unique_ptr<ProviderSandbox> provider_;
  std::unique_ptr<DevicesSim> devices_;
  std::unique_ptr<InvoicingSandbox> invoicing_;
  struct Http;
  std::unique_ptr<Http> http_;
  std::mt19937 rng_;

  std::vector<ScenarioVehicle> fleet_;
  std::vector<std::string> entry_lanes_, exit_lanes_, toll_lanes_;
  std::map<std::string, bool> closed_lanes_;
  std::string meter_;
  std::vector<std::uint32_t> toll_entries_;
  std::map<std::string, const config::LaneSection*> lane_cfg_;
  std::deque<ScenarioVehicle> parked_;
  std::size_t next_plate_ = 0;
  int entries_ = 0, exits_ = 0, tolls_ = 0;
  int entry_rr_ = 0, exit_rr_ = 0;
  std::int64_t peak_queue_ = 0;
  std::chrono::steady_clock::time_point last_status_poll_{};
  std::vector<ObservedPassage> passages_;
  std::vector<std::uint32_t> trips_;
  std::vector<InvoiceClaim> claims_;
  std::map<std::string, bool> claimed_;  // out_trade_no -> claimed
  bool claims_supported_ = false;
};

}  // namespace lanegate::sim
