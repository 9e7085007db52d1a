#include "sim/chaos.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace lanegate::sim {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kFaketimeLib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

enum class Fault {
  kKill,
  kUplinkDown,
  kProvider5xx,
  kLatency,
  kLostReplies,
  kNotifyPaused,
  kDeviceSilent,
  kBarrierStuck,
  kDiskFull,
  kClockJump,
};
constexpr std::array kAllFaults = {Fault::kKill,         Fault::kUplinkDown,   Fault::kProvider5xx,
                                   Fault::kLatency,      Fault::kLostReplies,  Fault::kNotifyPaused,
                                   Fault::kDeviceSilent, Fault::kBarrierStuck, Fault::kDiskFull,
                                   Fault::kClockJump};

std::string_view fault_name(Fault f) {
  switch (f) {
    case Fault::kKill:
      return "kill";
    case Fault::kUplinkDown:
      return "uplink_down";
    case Fault::kProvider5xx:
      return "provider_5xx";
    case Fault::kLatency:
      return "latency";
    case Fault::kLostReplies:
      return "lost_replies";
    case Fault::kNotifyPaused:
      return "notify_paused";
    case Fault::kDeviceSilent:
      return "device_silent";
    case Fault::kBarrierStuck:
      return "barrier_stuck";
    case Fault::kDiskFull:
      return "disk_full";
    case Fault::kClockJump:
      return "clock_jump";
  }
  return "?";
}

enum class Group { kProcess, kProvider, kDevices, kDatabase };

Group group_of(Fault f) {
  switch (f) {
    case Fault::kKill:
      return Group::kProcess;
    case Fault::kDeviceSilent:
    case Fault::kBarrierStuck:
      return Group::kDevices;
    case Fault::kDiskFull:
      return Group::kDatabase;
    default:
      return Group::kProvider;
  }
}

// ---- metrics -----------------------------------------------------------------------------

// "name{labels}" -> value, from the Prometheus text format.
using MetricMap = std::map<std::string, double>;

MetricMap parse_metrics(const std::string& text) {
  MetricMap m;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    try {
      m[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    } catch (const std::exception&) {
    }
  }
  return m;
}

// Sum of the series of `name` whose labels contain every comma-separated part of `labels`.
double metric_sum(const MetricMap& m, const std::string& name, const std::string& labels) {
  double sum = 0;
  for (const auto& [key, v] : m) {
    if (!key.starts_with(name)) continue;
    if (key.size() != name.size() && key[name.size()] != '{') continue;
    bool match = true;
    std::size_t start = 0;
    while (start < labels.size()) {
      std::size_t end = labels.find(',', start);
      if (end == std::string::npos) end = labels.size();
      if (key.find(labels.substr(start, end - start)) == std::string::npos) match = false;
      start = end + 1;
    }
    if (match) sum += v;
  }
  return sum;
}

// ---- proofs: what an operator sees for each fault ----------------------------------------

struct MetricProof {
  std::string name;
  std::string labels;  // comma-separated label fragments, e.g. to="down"
  enum class Test { kIncreased, kAtLeast, kAtMost } test = Test::kIncreased;
  double value = 0;
  // lanegated does not export this yet: a missing proof is reported as a gap.
  bool gap = false;

  std::string describe() const {
    std::string s = name + (labels.empty() ? "" : "{" + labels + "}");
    switch (test) {
      case Test::kIncreased:
        return s + " increased";
      case Test::kAtLeast:
        return s + " >= " + std::to_string(static_cast<int>(value));
      case Test::kAtMost:
        return s + " <= " + std::to_string(static_cast<int>(value));
    }
    return s;
  }
};

// Any one of the log lines and any one of the metrics proves the fault (or its recovery).
struct Proof {
  std::vector<std::string> log_lines;
  std::vector<MetricProof> metrics;
};

struct ProofPair {
  Proof active;     // while the fault is on
  Proof recovered;  // after it is cleared
};

using T = MetricProof::Test;

// The table of proofs: which log line and which metric tell an operator about each fault.
// `{device}` and `{lane}` are replaced by the fault's target.
ProofPair proofs_of(Fault f, int clock_jump_s) {
  switch (f) {
    case Fault::kKill:
      // A restart says so in the log; the queue items the dead process had leased come
      // back. No metric tells a crash from a start: process_start_time_seconds is the
      // conventional one and lanegated does not export it (a gap, reported).
      return {{{"lanegated running"}, {{"process_start_time_seconds", "", T::kAtLeast, 1, true}}},
              {{}, {{"lanegate_uplink_up", "", T::kAtLeast, 1}}}};
    case Fault::kUplinkDown:
      return {{{"uplink down"},
               {{"lanegate_uplink_transitions_total", "to=\"down\"", T::kIncreased},
                {"lanegate_uplink_up", "", T::kAtMost, 0}}},
              {{"uplink up"}, {{"lanegate_uplink_up", "", T::kAtLeast, 1}}}};
    case Fault::kProvider5xx:
      return {{{"provider replied with an error"},
               {{"lanegate_provider_calls_total", "outcome=\"retry_later\"", T::kIncreased}}},
              {{}, {{"lanegate_provider_calls_total", "outcome=\"ok\"", T::kIncreased}}}};
    case Fault::kLatency:
      // Replies later than the charge deadline: lanes decide offline and say why.
      return {{{"decision=pass_offline", "decision=fallback"},
               {{"lanegate_decisions_total", "decision=\"pass_offline\"", T::kIncreased},
                {"lanegate_decisions_total", "decision=\"fallback\"", T::kIncreased}}},
              {{}, {{"lanegate_decisions_total", "decision=\"pass_online\"", T::kIncreased}}}};
    case Fault::kLostReplies:
      return {{{"uplink down", "provider call failed", "no answer", "query"},
               {{"lanegate_provider_calls_total", "outcome=\"query_first\"", T::kIncreased},
                {"lanegate_provider_calls_total", "outcome=\"retry_later\"", T::kIncreased}}},
              {{}, {{"lanegate_provider_calls_total", "outcome=\"ok\"", T::kIncreased}}}};
    case Fault::kNotifyPaused:
      // Results stop arriving: the charges are settled by query instead.
      // No log line: lanegated cannot tell a paused sender from a quiet one, and the
      // queries it makes after kAcceptedQueryAfter settle the charges anyway.
      return {
          {{}, {{"lanegate_provider_calls_total", "call=\"query\",outcome=\"ok\"", T::kIncreased}}},
          {{}, {{"lanegate_provider_notifications_total", "", T::kIncreased}}}};
    case Fault::kDeviceSilent:
      return {{{"device health changed"},
               {{"lanegate_device_health", "device=\"{device}\"", T::kAtMost, 0},
                {"lanegate_device_transitions_total", "device=\"{device}\"", T::kIncreased}}},
              {{"device health changed"},
               {{"lanegate_device_health", "device=\"{device}\"", T::kAtLeast, 2}}}};
    case Fault::kBarrierStuck:
      return {{{"barrier alarm", "barrier did not confirm"},
               {{"lanegate_barrier_alarms_total", "", T::kIncreased}}},
              {{}, {}}};
    case Fault::kDiskFull:
      return {{{"attendant mode"}, {{"lanegate_attendant_mode", "", T::kAtLeast, 1}}},
              {{"attendant mode ended"}, {{"lanegate_attendant_mode", "", T::kAtMost, 0}}}};
    case Fault::kClockJump:
      // Within the ±300 s the provider's signatures allow, nothing may show at all.
      if (std::abs(clock_jump_s) <= 300) return {};
      // Beyond it, every signed exchange is refused, and said so, until the clock returns.
      return {{{"provider signature refused", "SIGN_ERROR"},
               {{"lanegate_provider_verify_failures_total", "check=\"skew\"", T::kIncreased},
                {"lanegate_provider_calls_total", "outcome=\"park\"", T::kIncreased},
                {"lanegate_provider_calls_total", "outcome=\"retry_later\"", T::kIncreased}}},
              {{}, {{"lanegate_provider_calls_total", "outcome=\"ok\"", T::kIncreased}}}};
  }
  return {};
}

std::string substitute(std::string s, const std::string& device, const std::string& lane) {
  s = std::regex_replace(s, std::regex(R"(\{device\})"), device);
  return std::regex_replace(s, std::regex(R"(\{lane\})"), lane);
}

// The config text with [gateway] max_database_mb set to `mb` (replaced or added).
std::string with_database_limit(const std::string& text, int mb) {
  const std::regex key(R"(\nmax_database_mb = \d+)");
  if (std::regex_search(text, key))
    return std::regex_replace(text, key, "\nmax_database_mb = " + std::to_string(mb));
  return std::regex_replace(text, std::regex(R"(\[gateway\]\n)"),
                            "[gateway]\nmax_database_mb = " + std::to_string(mb) + "\n");
}

// The chaos run's second taxi meter (issue 13): one gateway reads two meters, which number
// their trips each on its own, so two trips with one number and one boarding minute are
// ordinary. Its pty lies beside the first meter's.
constexpr const char* kSecondMeter = "meter-taxi-2";

// The config text with a second [[meter]] and its taxi lane added, when it has one meter.
std::string with_second_meter(const std::string& text) {
  std::smatch m;
  if (text.find(kSecondMeter) != std::string::npos ||
      !std::regex_search(text, m, std::regex(R"re(\[\[meter\]\][^\[]*?\ndevice = "([^"]+)")re"))) {
    return text;
  }
  const std::string dir = fs::path(m[1].str()).parent_path().string();
  const std::string device = dir + "/meter-chaos-2";
  // Its own code reader; its own ISU id when the regulator upload is on.
  const bool regulator = text.find("\n[regulator]") != std::string::npos;
  return text +
         "\n# Added by the chaos run: a second meter on this gateway, whose trips share trip\n"
         "# numbers and boarding minutes with the first one's, and its code reader.\n"
         "[[reader]]\n"
         "id = \"reader-taxi-2\"\n"
         "device = \"" +
         dir +
         "/reader-chaos-2\"\n"
         "\n"
         "[[meter]]\n"
         "id = \"" +
         std::string(kSecondMeter) +
         "\"\n"
         "device = \"" +
         device +
         "\"\n"
         "baud = 9600\n"
         "parity = \"N\"\n"
         "data_bits = 8\n"
         "stop_bits = 1\n"
         "\n"
         "[[lane]]\n"
         "id = \"taxi-2\"\n"
         "mode = \"taxi\"\n"
         "name = \"second meter taxi\"\n"
         "meter = \"" +
         std::string(kSecondMeter) +
         "\"\n"
         "code_reader = \"reader-taxi-2\"\n"
         "code_wait_ms = 2000\n"
         "qr_wait_s = 30\n" +
         (regulator ? "isu_id = \"440300012346\"\n" : "");
}

// ---- the run -----------------------------------------------------------------------------

struct KindStats {
  int injected = 0;
  int survived = 0;
  std::vector<std::string> notes;
};

struct ActiveFault {
  Fault kind;
  Steady::time_point started, planned_end, hard_end;
  std::string device, lane;  // target (device faults)
  std::uintmax_t log_offset = 0;
  MetricMap before;
  pid_t pid = -1;
  bool proven = false;
  std::string proof_text;
  bool cleared = false;
  Steady::time_point recovery_deadline{};
  bool attendant_seen = false;
  int barrier_opens_before = 0;          // barrier_stuck: open commands at injection
  Steady::time_point last_vehicle_at{};  // barrier_stuck: when a vehicle last met it
};

class Chaos {
 public:
  Chaos(ScenarioWorld& w, const ScenarioOptions& o, std::string disk_mode, bool faketime,
        fs::path faketime_file, std::string base_config)
      : w_(w),
        o_(o),
        disk_mode_(std::move(disk_mode)),
        faketime_(faketime),
        faketime_file_(std::move(faketime_file)),
        base_config_(std::move(base_config)) {}

  int run();

 private:
  bool short_run() const { return o_.duration_s <= 90; }
  MetricMap metrics() {
    ApiAnswer a = w_.api_get("/metrics");
    return a.status == 200 ? parse_metrics(a.body) : MetricMap{};
  }
  bool available(Fault f) const;
  bool can_start(Fault f) const;
  void maybe_start();
  void start(Fault f);
  void inject(ActiveFault& a);
  void clear(ActiveFault& a);
  void tick();
  bool check(const ActiveFault& a, const Proof& p, const MetricMap& now, std::string& what);
  void violation(const std::string& v) {
    violations_.push_back(v);
    if (!o_.quiet) std::printf("\n  VIOLATION: %s\n", v.c_str());
  }
  // Lines carry the UTC time, to line them up with lanegated's log.
  void say(const std::string& s) {
    if (o_.quiet) return;
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
    std::printf("\n  %s %s\n", buf, s.c_str());
  }
  void ensure_gateway(const std::string& during);
  void set_disk_full(bool full);
  void set_clock_offset(int seconds);

  ScenarioWorld& w_;
  const ScenarioOptions& o_;
  std::string disk_mode_;
  bool faketime_ = false;
  fs::path faketime_file_;
  std::string base_config_;
  std::map<Fault, KindStats> stats_;
  std::vector<ActiveFault> active_;
  std::vector<std::string> violations_;
  std::vector<std::string> gaps_;
  Steady::time_point next_start_{};
  Steady::time_point started_at_ = Steady::now();
  int clock_direction_ = 1;
};

bool Chaos::available(Fault f) const {
  if (f == Fault::kDiskFull) return disk_mode_ != "off";
  if (f == Fault::kClockJump) return faketime_;
  return true;
}

bool Chaos::can_start(Fault f) const {
  if (!available(f)) return false;
  for (const auto& a : active_) {
    if (a.kind == f) return false;
    if (f == Fault::kKill || a.kind == Fault::kKill) return false;
    if (group_of(a.kind) == group_of(f)) return false;
    // In attendant mode no open command reaches a barrier, so a stuck one cannot show.
    if ((f == Fault::kBarrierStuck && a.kind == Fault::kDiskFull) ||
        (f == Fault::kDiskFull && a.kind == Fault::kBarrierStuck)) {
      return false;
    }
  }
  return true;
}

void Chaos::maybe_start() {
  if (Steady::now() < next_start_) return;
  if (active_.size() >= 2) return;
  // A crash first: it needs the stage to itself (its metrics reset), which a busy
  // schedule may never give it later.
  if (stats_[Fault::kKill].injected == 0 && can_start(Fault::kKill) &&
      Steady::now() - started_at_ > 5s) {
    start(Fault::kKill);
    next_start_ = Steady::now() + 500ms;
    return;
  }
  // Kinds not injected yet first, then any kind at random.
  // The first seconds belong to the crash (above): lanegated settles first.
  if (stats_[Fault::kKill].injected == 0 && Steady::now() - started_at_ <= 5s) return;
  std::vector<Fault> fresh, any;
  for (Fault f : kAllFaults) {
    if (!can_start(f)) continue;
    any.push_back(f);
    if (stats_[f].injected == 0) fresh.push_back(f);
  }
  bool all_done = true;
  for (Fault f : kAllFaults) {
    if (available(f) && stats_[f].injected == 0) all_done = false;
  }
  // While some kinds were never injected, a busy group waits rather than repeating.
  std::vector<Fault>& pool = !fresh.empty() ? fresh : (all_done ? any : fresh);
  if (pool.empty()) return;
  // Slow proofs (a stuck barrier needs the gateway's confirm timeouts) go first.
  Fault f = pool[w_.rng()() % pool.size()];
  if (std::find(pool.begin(), pool.end(), Fault::kBarrierStuck) != pool.end() &&
      stats_[Fault::kBarrierStuck].injected == 0) {
    f = Fault::kBarrierStuck;
  }
  start(f);
  next_start_ =
      Steady::now() + std::chrono::milliseconds(short_run() ? 500 : 1000 + w_.rng()() % 3000);
}

void Chaos::start(Fault f) {
  ActiveFault a;
  a.kind = f;
  a.started = Steady::now();
  const bool s = short_run();
  int min_ms = s ? 3000 : 5000, max_ms = s ? 5000 : 15000;
  if (f == Fault::kBarrierStuck) {
    // The gateway alarms after open_confirm_timeout_ms x (1 + open_retries).
    min_ms = 16000;
    max_ms = s ? 17000 : 25000;
  }
  if (f == Fault::kNotifyPaused) {
    // Long enough for lanegated's query of a charge that stays ACCEPTED.
    min_ms = std::max(min_ms, 8000);
    max_ms = std::max(max_ms, 10000);
  }
  a.planned_end = a.started + std::chrono::milliseconds(
                                  min_ms + static_cast<int>(w_.rng()() % (max_ms - min_ms + 1)));
  // A database bound below its size bites only once SQLite's free pages are used up.
  a.hard_end = a.planned_end + (f == Fault::kDiskFull ? 40s : 15s);
  a.log_offset = fs::exists(w_.gateway_log()) ? fs::file_size(w_.gateway_log()) : 0;
  a.before = metrics();
  a.pid = w_.gateway_pid();
  if (f == Fault::kDeviceSilent || f == Fault::kBarrierStuck) {
    // A lane of a group with a sibling, so traffic has somewhere else to go. A stuck
    // barrier is met at an entry (an exit may have no parked vehicle to send).
    std::vector<std::string> lanes = w_.entry_lanes();
    if (f == Fault::kDeviceSilent)
      lanes.insert(lanes.end(), w_.exit_lanes().begin(), w_.exit_lanes().end());
    a.lane = lanes[w_.rng()() % lanes.size()];
    const auto& l = *std::find_if(w_.config().lanes.begin(), w_.config().lanes.end(),
                                  [&](const config::LaneSection& s) { return s.id == a.lane; });
    a.device = f == Fault::kDeviceSilent ? l.camera : l.barrier;
  }
  stats_[f].injected++;
  inject(a);
  if (f == Fault::kKill) {
    // Instantaneous: the proof is the restarted process.
    a.planned_end = Steady::now();
  }
  active_.push_back(std::move(a));
}

void Chaos::inject(ActiveFault& a) {
  ProviderFaults pf = w_.provider().faults();
  switch (a.kind) {
    case Fault::kKill:
      say("fault: SIGKILL lanegated (pid " + std::to_string(w_.gateway_pid()) + ")");
      if (!w_.restart_gateway(SIGKILL))
        violation("kill: lanegated did not come back after SIGKILL");
      return;
    case Fault::kUplinkDown:
      pf.refuse_connections = true;
      break;
    case Fault::kProvider5xx:
      pf.error_5xx_share = 0.4;
      pf.unavailable_share = 0.2;
      break;
    case Fault::kLatency:
      // Beyond the lane's charge deadline (1.5 s in the demo), below the request timeout.
      pf.latency_ms = std::max(2000, w_.config().provider.charge_deadline_ms + 700);
      break;
    case Fault::kLostReplies:
      pf.lost_reply_share = 0.5;
      break;
    case Fault::kNotifyPaused:
      pf.notifications_paused = true;
      break;
    case Fault::kDeviceSilent:
      w_.set_lane_closed(a.lane, true);
      if (auto s = w_.devices().set_silent(a.device, true); !s)
        violation("device_silent: " + s.error().message);
      break;
    case Fault::kBarrierStuck:
      // One vehicle meets the stuck barrier and waits there: no other vehicle can use the
      // lane until the barrier is freed.
      if (auto s = w_.devices().set_barrier_stuck(a.device, true); !s)
        violation("barrier_stuck: " + s.error().message);
      w_.set_lane_closed(a.lane, true);
      // The barrier may still be up for the previous vehicle (a stuck barrier that is up
      // reports up): the waiting vehicle arrives once it is down.
      for (int k = 0; k < 60; ++k) {
        auto b = w_.devices().barrier(a.device);
        if (!b || (b->closed && !b->opened)) break;
        std::this_thread::sleep_for(50ms);
      }
      if (auto b = w_.devices().barrier(a.device)) a.barrier_opens_before = b->open_commands;
      w_.drive_one(a.lane);
      a.last_vehicle_at = Steady::now();
      break;
    case Fault::kDiskFull:
      w_.set_database_fault(true);
      set_disk_full(true);
      break;
    case Fault::kClockJump:
      clock_direction_ = -clock_direction_;
      set_clock_offset(clock_direction_ * o_.clock_jump_s);
      break;
  }
  w_.provider().set_faults(pf);
  say("fault: " + std::string(fault_name(a.kind)) + (a.device.empty() ? "" : " on " + a.device) +
      (a.kind == Fault::kClockJump
           ? " (" + std::to_string(clock_direction_ * o_.clock_jump_s) + " s)"
           : ""));
}

void Chaos::clear(ActiveFault& a) {
  // Recovery proofs compare with the state just before clearing: lanegated may log its
  // recovery (a SIGHUP's "attendant mode ended") within milliseconds, before any slower
  // step here could note where the log stood.
  MetricMap before = metrics();
  const std::uintmax_t log_offset =
      fs::exists(w_.gateway_log()) ? fs::file_size(w_.gateway_log()) : 0;
  ProviderFaults pf = w_.provider().faults();
  switch (a.kind) {
    case Fault::kKill:
      break;
    case Fault::kUplinkDown:
      pf.refuse_connections = false;
      break;
    case Fault::kProvider5xx:
      pf.error_5xx_share = 0;
      pf.unavailable_share = 0;
      break;
    case Fault::kLatency:
      pf.latency_ms = 0;
      break;
    case Fault::kLostReplies:
      pf.lost_reply_share = 0;
      break;
    case Fault::kNotifyPaused:
      pf.notifications_paused = false;
      break;
    case Fault::kDeviceSilent:
      (void)w_.devices().set_silent(a.device, false);
      w_.set_lane_closed(a.lane, false);
      break;
    case Fault::kBarrierStuck:
      (void)w_.devices().set_barrier_stuck(a.device, false);
      w_.set_lane_closed(a.lane, false);
      break;
    case Fault::kDiskFull:
      set_disk_full(false);
      break;
    case Fault::kClockJump:
      set_clock_offset(0);
      break;
  }
  w_.provider().set_faults(pf);
  a.cleared = true;
  // 30 s in both runs: a short run on a loaded 2-core CI machine once saw no online decision
  // within 15 s of latency clearing while lost replies from another fault kept the uplink
  // flapping (seed 9); the money was right, the deadline was too tight to say "recovered".
  a.recovery_deadline = Steady::now() + 30s;
  a.before = std::move(before);
  a.pid = w_.gateway_pid();
  a.log_offset = log_offset;
}

bool Chaos::check(const ActiveFault& a, const Proof& p, const MetricMap& now, std::string& what) {
  bool log_ok = p.log_lines.empty();
  std::string log_hit;
  if (!p.log_lines.empty()) {
    const std::string text = w_.gateway_log_text(a.log_offset);
    for (const auto& l : p.log_lines) {
      if (text.find(substitute(l, a.device, a.lane)) != std::string::npos) {
        log_ok = true;
        log_hit = l;
        break;
      }
    }
  }
  bool metric_ok = true;
  std::string metric_hit;
  bool any_real = false;
  bool real_ok = false;
  for (const auto& m : p.metrics) {
    if (m.gap) continue;
    any_real = true;
    const std::string labels = substitute(m.labels, a.device, a.lane);
    const double v = metric_sum(now, m.name, labels);
    bool ok = false;
    switch (m.test) {
      case T::kIncreased: {
        const double b = a.pid == w_.gateway_pid() ? metric_sum(a.before, m.name, labels) : 0;
        ok = v > b;
        break;
      }
      case T::kAtLeast:
        ok = v >= m.value && now.size() > 0;
        break;
      case T::kAtMost: {
        // Absent series do not count as zero.
        bool present = false;
        for (const auto& [k, x] : now) {
          (void)x;
          if (k.starts_with(m.name) && k.find(labels) != std::string::npos) present = true;
        }
        ok = present && v <= m.value;
        break;
      }
    }
    if (ok) {
      real_ok = true;
      metric_hit = m.describe();
      break;
    }
  }
  if (any_real) metric_ok = real_ok;
  what = (log_hit.empty() ? "" : "log \"" + log_hit + "\"") +
         (metric_hit.empty() ? ""
                             : std::string(log_hit.empty() ? "" : ", ") + "metric " +
                                   substitute(metric_hit, a.device, a.lane));
  return log_ok && metric_ok;
}

void Chaos::ensure_gateway(const std::string& during) {
  if (w_.gateway_running()) return;
  violation("lanegated exited on its own during " + during + "; see " + w_.gateway_log().string());
  if (!w_.restart_gateway(SIGTERM))
    violation("lanegated did not restart after exiting during " + during);
}

void Chaos::tick() {
  const auto now_t = Steady::now();
  std::string during;
  for (const auto& a : active_)
    during += std::string(during.empty() ? "" : "+") + std::string(fault_name(a.kind));
  ensure_gateway(during.empty() ? "traffic" : during);
  if (active_.empty()) return;
  const MetricMap now = metrics();
  for (auto& a : active_) {
    const ProofPair pp = proofs_of(a.kind, o_.clock_jump_s);
    if (!a.cleared) {
      if (!a.proven) {
        std::string what;
        if (check(a, pp.active, now, what)) {
          a.proven = true;
          a.proof_text = what;
        }
      }
      if (a.kind == Fault::kDiskFull) {
        if (metric_sum(now, "lanegate_attendant_mode", "") >= 1) a.attendant_seen = true;
      }
      if (a.kind == Fault::kBarrierStuck && !a.proven && now_t - a.last_vehicle_at > 5s) {
        // No open command reached the barrier yet (the vehicle fell back, the database
        // was full): the next vehicle tries.
        auto b = w_.devices().barrier(a.device);
        if (b && b->open_commands == a.barrier_opens_before) {
          w_.drive_one(a.lane);
          a.last_vehicle_at = Steady::now();
        }
      }
      if ((a.proven && now_t >= a.planned_end) || now_t >= a.hard_end) {
        if (!a.proven) {
          std::string what;
          std::string need;
          for (const auto& l : pp.active.log_lines) need += " log \"" + l + "\" |";
          for (const auto& m : pp.active.metrics) {
            if (!m.gap) need += " metric " + substitute(m.describe(), a.device, a.lane) + " |";
          }
          std::string where;
          if (a.kind == Fault::kBarrierStuck) {
            auto b = w_.devices().barrier(a.device);
            where = " [" + a.device + ": " +
                    std::to_string(b ? b->open_commands - a.barrier_opens_before : -1) +
                    " open commands since stuck]";
          }
          violation(std::string(fault_name(a.kind)) +
                    ": no operator proof while it lasted (wanted" + need + ")" + where);
        }
        for (const auto& m : pp.active.metrics) {
          if (m.gap && metric_sum(now, m.name, "") == 0) {
            const std::string g =
                std::string(fault_name(a.kind)) + ": lanegated exports no " + m.name;
            if (std::find(gaps_.begin(), gaps_.end(), g) == gaps_.end()) gaps_.push_back(g);
          }
        }
        clear(a);
        say("cleared: " + std::string(fault_name(a.kind)) +
            (a.proven ? " (proof: " + a.proof_text + ")" : ""));
      }
    } else {
      std::string what;
      // A fault that never showed has nothing to recover from (its violation is noted).
      const bool recovered = !a.proven || check(a, pp.recovered, now, what);
      if (recovered || now_t >= a.recovery_deadline) {
        KindStats& ks = stats_[a.kind];
        if (a.kind == Fault::kDiskFull) {
          w_.set_database_fault(false);
        }
        if (recovered && a.proven) {
          ks.survived++;
        } else if (!recovered) {
          violation(std::string(fault_name(a.kind)) + ": no recovery within " +
                    (short_run() ? "15" : "30") + " s after it was cleared");
        }
        a.started = {};  // done: removed below
      }
    }
  }
  std::erase_if(
      active_, [](const ActiveFault& a) { return a.cleared && a.started == Steady::time_point{}; });
}

void Chaos::set_disk_full(bool full) {
  if (disk_mode_ == "pagecount") {
    // A limit below the database's size: the next write that needs a page fails
    // (SQLITE_FULL); the original limit restores the space.
    std::string text = base_config_;
    if (full) text = with_database_limit(text, 1);
    {
      std::ofstream out(w_.config_file(), std::ios::trunc);
      out << text;
    }
    w_.signal_gateway(SIGHUP);
  } else if (disk_mode_ == "tmpfs") {
    const fs::path filler = w_.config().gateway.state_dir / "chaos-filler";
    if (full) {
      std::ofstream out(filler, std::ios::binary | std::ios::trunc);
      const std::string block(1 << 16, '\0');
      for (int i = 0; i < 1 << 14 && out; ++i)
        out.write(block.data(), static_cast<std::streamsize>(block.size()));
    } else {
      std::error_code ec;
      fs::remove(filler, ec);
    }
  }
}

void Chaos::set_clock_offset(int seconds) {
  std::ofstream out(faketime_file_, std::ios::trunc);
  out << (seconds >= 0 ? "+" : "") << seconds << "\n";
}

int Chaos::run() {
  const auto t0 = Steady::now();
  const auto end = t0 + std::chrono::seconds(o_.duration_s);
  // A kind the schedule could not start yet (its group stayed busy) gets a bounded grace, so
  // every run proves every fault instead of failing now and then on "never injected".
  const auto grace_end = end + (short_run() ? 40s : 60s);
  const auto uncovered = [&] {
    return std::any_of(std::begin(kAllFaults), std::end(kAllFaults),
                       [&](Fault f) { return available(f) && stats_[f].injected == 0; });
  };
  int i = 0;
  const int claim_every = 15;
  int claims_wanted = 0;
  while (Steady::now() < end || (uncovered() && Steady::now() < grace_end)) {
    maybe_start();
    tick();
    const bool disk_full = std::any_of(active_.begin(), active_.end(), [](const ActiveFault& a) {
      return a.kind == Fault::kDiskFull && !a.cleared && a.attendant_seen;
    });
    // lanegated leaves attendant mode as soon as a commit succeeds again (SQLite reuses the
    // free pages the outbox's acked items leave), and then a pass is committed before the
    // barrier opens, as always. A pass is a violation only when lanegated reported attendant
    // mode both before and after the vehicle's decision.
    const auto attendant_now = [&] {
      return disk_full && metric_sum(metrics(), "lanegate_attendant_mode", "") >= 1;
    };
    const bool attendant_before = attendant_now();
    const std::size_t before = w_.passages().size();
    w_.drive_next(i);
    for (std::size_t k = before; attendant_before && k < w_.passages().size(); ++k) {
      // A toll decision read late from the display may predate attendant mode.
      const ObservedPassage& p = w_.passages()[k];
      if (p.late || p.outcome != LaneOutcome::kPass || !attendant_now()) {
        continue;
      }
      // Attendant mode: no barrier opens on its own.
      violation("disk_full: lane " + p.lane + " let " + p.plate +
                " pass while lanegated was in attendant mode");
    }
    if (i % 7 == 3) w_.end_taxi_trip();
    if (o_.claims > 0 && i % claim_every == claim_every - 1) ++claims_wanted;
    if (claims_wanted > static_cast<int>(w_.claims().size())) {
      w_.claim_invoices(claims_wanted - static_cast<int>(w_.claims().size()));
    }
    ++i;
    if (!o_.quiet) {
      std::string act;
      for (const auto& a : active_)
        act += " " + std::string(fault_name(a.kind)) + (a.cleared ? "(recovering)" : "");
      std::printf("\r  t=%3llds vehicles %d trips %zu invoices %zu faults:%s          ",
                  static_cast<long long>(
                      std::chrono::duration_cast<std::chrono::seconds>(Steady::now() - t0).count()),
                  i, w_.trips_ended().size(), w_.claims().size(), act.c_str());
      std::fflush(stdout);
    }
  }
  // Let the running faults run out (proof and recovery), then nothing is injected.
  const auto wind_down = Steady::now() + 60s;
  while (!active_.empty() && Steady::now() < wind_down) {
    for (auto& a : active_) {
      if (!a.cleared) a.planned_end = std::min(a.planned_end, Steady::now());
    }
    tick();
    w_.drive_next(i++);
  }
  for (auto& a : active_) {
    if (!a.cleared) clear(a);
    violation(std::string(fault_name(a.kind)) + ": still unresolved at the end of the run");
  }
  active_.clear();
  w_.set_database_fault(false);
  w_.empty_lot();
  if (!o_.quiet) std::printf("\n");

  std::cout << "waiting for the outbox to drain, every charge to settle and every claimed invoice "
               "to be issued"
            << std::endl;
  // An item whose backoff grew during the faults (retry_cap_ms allows minutes; the
  // exponential step after six failures is already 64 s) may be due only well after the
  // last fault cleared: a short run that waited 60 s failed once on an invoice still
  // backing off. 90 s covers that step and keeps the short run inside its 300 s ctest limit.
  auto final_status = w_.drain(std::chrono::seconds(short_run() ? 90 : 120), !o_.quiet);
  if (final_status && claims_wanted > static_cast<int>(w_.claims().size())) {
    w_.claim_invoices(claims_wanted - static_cast<int>(w_.claims().size()));
    if (auto again = w_.drain(60s, !o_.quiet)) final_status = again;
  }
  if (!o_.quiet) std::printf("\n");
  ScenarioTotals totals;
  std::vector<std::string> problems = w_.account(totals);
  if (!final_status) problems.push_back("the outbox did not drain after the faults ended");
  for (auto& p : w_.verify_ledger(&gaps_)) problems.push_back(std::move(p));
  for (auto& v : violations_) problems.insert(problems.begin(), v);

  std::printf("\n== lanegate chaos summary (seed %u, %d s of faults)\n", o_.seed, o_.duration_s);
  std::printf("  %-15s %9s %9s\n", "fault", "injected", "survived");
  for (Fault f : kAllFaults) {
    const KindStats& ks = stats_[f];
    std::string note;
    if (!available(f)) {
      note = f == Fault::kDiskFull ? "  (not injectable: no max_database_mb and no mount)"
                                   : "  (not injectable: libfaketime missing)";
    }
    std::printf("  %-15s %9d %9d%s\n", std::string(fault_name(f)).c_str(), ks.injected, ks.survived,
                note.c_str());
  }
  std::printf("  traffic    %zu vehicles (%d entries, %d exits, %d toll), %zu taxi trips\n",
              w_.passages().size(), w_.entries(), w_.exits(), w_.tolls(), w_.trips_ended().size());
  // The toll and taxi cases of issue 13: how often each was driven, so a run that never
  // met one says so.
  int no_plate = 0, no_record = 0, queued = 0, met_busy = 0;
  for (const auto& d : w_.toll_drives()) {
    if (d.kind == TollCase::kNoPlate) {
      ++no_plate;
    }
    if (d.kind == TollCase::kNoRecord) {
      ++no_record;
    }
    if (d.kind == TollCase::kQueued) {
      ++queued;
    }
    if (d.met_busy_lane) {
      ++met_busy;
    }
  }
  int twins = 0;
  for (const auto& t : w_.trips_ended()) {
    twins += t.twin ? 1 : 0;
  }
  std::printf(
      "  toll cases plate missed %d, record missing %d, queued %d (%d met a lane still "
      "deciding)\n",
      no_plate, no_record, queued, met_busy);
  std::printf("  taxi twins %d trips on two meters with equal trip numbers and boarding minutes\n",
              twins);
  std::string reasons;
  for (const auto& [reason, n] : totals.taxi_meter_reasons) {
    reasons += (reasons.empty() ? "" : ", ") + reason + " " + std::to_string(n);
  }
  std::printf("  taxi paid  by code %lld, by QR %lld, at the meter %lld (%s); refund_due %lld\n",
              static_cast<long long>(totals.taxi_code), static_cast<long long>(totals.taxi_qr),
              static_cast<long long>(totals.taxi_meter), reasons.c_str(),
              static_cast<long long>(totals.taxi_refund_due));
  if (w_.regulator() != nullptr) {
    std::printf("  regulator  %lld of %zu trips uploaded (%lld duplicate uploads)\n",
                static_cast<long long>(totals.regulator_uploaded), w_.trips_ended().size(),
                static_cast<long long>(totals.regulator_duplicates));
  }
  std::printf(
      "  charges    %lld provider charges, %s yuan; settled %s at lanegate, %s at the sandbox\n",
      static_cast<long long>(totals.provider_charges), totals.charged.to_string().c_str(),
      totals.settled_ours.to_string().c_str(), totals.settled_theirs.to_string().c_str());
  if (w_.claims_supported()) {
    std::printf("  invoices   claimed %lld  issued %lld  pending %lld\n",
                static_cast<long long>(totals.invoices_claimed),
                static_cast<long long>(totals.invoices_issued),
                static_cast<long long>(totals.invoices_pending));
  } else {
    std::printf("  invoices   not claimed: lanegated does not serve the receipt route yet\n");
  }
  if (totals.open_after_fallback > 0) {
    std::printf(
        "  refused    %lld charges of fallen-back passages left open, parked for an operator\n",
        static_cast<long long>(totals.open_after_fallback));
  }
  std::printf("  disk full  injected by %s; clock jumps by %s\n", disk_mode_.c_str(),
              faketime_ ? "libfaketime" : "nothing (libfaketime missing)");
  for (const auto& g : gaps_) std::printf("  GAP: %s\n", g.c_str());
  std::printf("  logs in %s\n", o_.workdir.c_str());
  for (Fault f : kAllFaults) {
    if (available(f) && stats_[f].injected == 0) {
      problems.push_back(std::string(fault_name(f)) + ": never injected (run longer)");
    }
  }
  if (!w_.toll_lanes().empty()) {
    if (no_plate == 0) {
      problems.push_back("toll: no vehicle with a missed plate (run longer)");
    }
    if (no_record == 0) {
      problems.push_back("toll: no vehicle without a record (run longer)");
    }
    if (queued == 0) {
      problems.push_back("toll: no queue of vehicles (run longer)");
    }
  }
  if (twins == 0 &&
      w_.config().lanes.end() != std::find_if(w_.config().lanes.begin(), w_.config().lanes.end(),
                                              [](const config::LaneSection& l) {
                                                return l.mode == config::LaneMode::kTaxi &&
                                                       l.meter == kSecondMeter;
                                              })) {
    problems.push_back("taxi: no twin trips on two meters (run longer)");
  }
  if (!problems.empty()) {
    std::printf("\nVIOLATIONS (%zu):\n", problems.size());
    for (const auto& p : problems) std::printf("  %s\n", p.c_str());
    return 1;
  }
  std::printf("  every fault survived, every fen accounted for, the ledger verifies\n");
  return 0;
}

// Whether this config loader knows [gateway] max_database_mb.
bool config_knows_max_database_mb(const std::string& text) {
  const std::string with = with_database_limit(text, 4096);
  char tmpl[] = "/tmp/lanegate-chaos-probe-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return false;
  ::close(fd);
  {
    std::ofstream out(tmpl);
    out << with;
  }
  const bool ok = config::load_file(tmpl).has_value();
  std::error_code ec;
  fs::remove(tmpl, ec);
  return ok;
}

}  // namespace

int run_chaos(const ScenarioOptions& given) {
  ScenarioOptions o = given;
  std::error_code ec;
  fs::create_directories(o.workdir / "state", ec);

  // Disk full: the config knob if this lanegated has it, else a small tmpfs as the state
  // directory when this process may mount one.
  std::string disk_mode = o.disk_full;
  std::string source_text;
  {
    std::ifstream in(o.config);
    std::stringstream ss;
    ss << in.rdbuf();
    source_text = ss.str();
  }
  const bool knob = config_knows_max_database_mb(source_text);
  bool mounted = false;
  const fs::path state = o.workdir / "state";
  auto try_mount = [&] {
    for (const auto& e : fs::directory_iterator(state, ec)) fs::remove_all(e.path(), ec);
    mounted = ::mount("tmpfs", state.c_str(), "tmpfs", 0, "size=48m,mode=0700") == 0;
    return mounted;
  };
  if (disk_mode == "auto")
    disk_mode = knob ? "pagecount" : (try_mount() ? "tmpfs" : "off");
  else if (disk_mode == "pagecount" && !knob)
    disk_mode = "off";
  else if (disk_mode == "tmpfs" && !try_mount())
    disk_mode = "off";

  // The config the world writes gets the database limit (the chaos run rewrites it) and a
  // second taxi meter.
  fs::path config_for_world = o.workdir.string() + ".chaos-source.toml";
  {
    std::ofstream out(config_for_world);
    // A bound far above what the run needs, so that restoring it returns the space.
    out << with_second_meter(disk_mode == "pagecount" ? with_database_limit(source_text, 4096)
                                                      : source_text);
  }
  o.config = config_for_world;

  // Wall-clock jumps: lanegated runs under libfaketime, whose offset file we rewrite.
  const bool faketime = fs::exists(kFaketimeLib);
  const fs::path faketime_file = o.workdir.string() + ".faketime";
  std::vector<std::pair<std::string, std::string>> env;
  if (faketime) {
    std::ofstream(faketime_file) << "+0\n";
    env = {{"LD_PRELOAD", kFaketimeLib},
           {"FAKETIME_TIMESTAMP_FILE", faketime_file.string()},
           {"FAKETIME_NO_CACHE", "1"},
           // A wall-clock step (NTP, an operator) never moves the monotonic clock.
           {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
  }

  int rc = 2;
  {
    auto started = ScenarioWorld::start(o, env);
    if (!started) {
      std::cerr << "chaos: " << started.error().message << "\n";
    } else {
      ScenarioWorld& w = **started;
      std::cout << "lanegated up under chaos: " << w.config().lanes.size() << " lanes, "
                << o.duration_s << " s of faults, seed " << o.seed << ", disk full by " << disk_mode
                << std::endl;
      std::string base_config;
      {
        std::ifstream in(w.config_file());
        std::stringstream ss;
        ss << in.rdbuf();
        base_config = ss.str();
      }
      Chaos chaos(w, o, disk_mode, faketime, faketime_file, base_config);
      rc = chaos.run();
    }
  }
  if (mounted) {
    // Keep the database for a post-mortem; the tmpfs goes.
    fs::copy(state, o.workdir / "state-final", fs::copy_options::recursive, ec);
    ::umount2(state.c_str(), MNT_DETACH);
  }
  fs::remove(faketime_file, ec);
  if (config_for_world != given.config) fs::remove(config_for_world, ec);
  return rc;
}

}  // namespace lanegate::sim
