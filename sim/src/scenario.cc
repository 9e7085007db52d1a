#include "sim/scenario.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "core/money.h"
#include "sim/devices.h"
#include "sim/provider_sandbox.h"

namespace lanegate::sim {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
  fs::path config;
  fs::path bin_dir;
  fs::path workdir = "/tmp/lanegate-demo";
  int port_offset = 0;
  int vehicles = 200;
  int trips = 20;
  int kills = 0;
  unsigned seed = 20261122;
  bool outage = true;
  bool quiet = false;
  std::string token = "demo-operator-token";
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Rewrites demo paths and shifts ports so that several runs can share a machine.
std::string rewrite_config(std::string text, const Options& o, const std::string& merchant_serial) {
  text = std::regex_replace(text, std::regex("/tmp/lanegate-demo"), o.workdir.string());
  if (o.port_offset != 0) {
    auto shift = [&](const std::regex& re, const std::string& prefix) {
      std::string out;
      auto begin = std::sregex_iterator(text.begin(), text.end(), re);
      std::size_t last = 0;
      for (auto it = begin; it != std::sregex_iterator(); ++it) {
        out.append(text, last, static_cast<std::size_t>(it->position()) - last);
        out += prefix + std::to_string(std::stoi((*it)[1].str()) + o.port_offset);
        last = static_cast<std::size_t>(it->position() + it->length());
      }
      out.append(text, last);
      text = out;
    };
    shift(std::regex(R"(127\.0\.0\.1:(\d+))"), "127.0.0.1:");
    shift(std::regex(R"(\nport = (\d+))"), "\nport = ");
    shift(std::regex(R"(\nlisten_port = (\d+))"), "\nlisten_port = ");
  }
  text = std::regex_replace(text, std::regex(R"(merchant_serial_no = "[^"]*")"),
                            "merchant_serial_no = \"" + merchant_serial + "\"");
  return text;
}

struct Vehicle {
  std::string plate;
  std::string colour_name;  // provider name
  int colour_code = 0;      // camera register value
  bool bound = true;        // has a binding at the sandbox
  bool overdue = false;
};

class Gateway {
 public:
  Gateway(fs::path bin, fs::path config, fs::path log) : bin_(std::move(bin)), config_(std::move(config)), log_(std::move(log)) {}
  ~Gateway() { stop(SIGTERM); }

  bool start() {
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(fd, 2);
      dup2(fd, 1);
      unsetenv("NOTIFY_SOCKET");
      unsetenv("JOURNAL_STREAM");
      execl(bin_.c_str(), bin_.c_str(), "--config", config_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return true;
  }

  // Returns the exit status (or -1 when it had to be killed).
  int stop(int sig) {
    if (pid_ <= 0) return 0;
    kill(pid_, sig);
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(50ms);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    return waitpid(pid_, &status, WNOHANG) == 0;
  }

 private:
  fs::path bin_, config_, log_;
  pid_t pid_ = -1;
};

class Api {
 public:
  Api(const std::string& host, int port, bool tls, const fs::path& ca, std::string token) : token_(std::move(token)) {
    if (tls) {
      auto c = std::make_unique<httplib::SSLClient>(host, port);
      c->set_ca_cert_path(ca.c_str());
      c->enable_server_certificate_verification(true);
      client_ = std::move(c);
    } else {
      client_ = std::make_unique<httplib::ClientImpl>(host, port);
    }
    client_->set_connection_timeout(2, 0);
    client_->set_read_timeout(5, 0);
  }

  std::optional<json::object> get(const std::string& path) {
    httplib::Headers h{{"Authorization", "Bearer " + token_}};
    auto r = client_->Get(path.c_str(), h);
    if (!r || r->status != 200) return std::nullopt;
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object()) return std::nullopt;
    return v.as_object();
  }

  bool healthy() {
    auto r = client_->Get("/healthz");
    return r && r->status == 200;
  }

 private:
  std::string token_;
  std::unique_ptr<httplib::ClientImpl> client_;
};

std::int64_t jint(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  if (it == o.end()) return 0;
  if (auto p = it->value().if_int64()) return *p;
  if (auto p = it->value().if_uint64()) return static_cast<std::int64_t>(*p);
  return 0;
}

const json::object* jobj(const json::object& o, std::string_view k) {
  auto it = o.find(k);
  return it == o.end() ? nullptr : it->value().if_object();
}

int usage() {
  std::cerr << "usage: lanegate-sim scenario --config FILE --bin-dir DIR [--workdir DIR] [--port-offset N]\n"
               "         [--vehicles N] [--trips N] [--kill N] [--seed N] [--no-outage] [--quiet]\n";
  return 2;
}

}  // namespace

int run_scenario(std::span<const std::string> args) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    std::optional<std::string> v;
    if (a == "--no-outage") {
      o.outage = false;
    } else if (a == "--quiet") {
      o.quiet = true;
    } else if (!(v = value())) {
      return usage();
    } else if (a == "--config") {
      o.config = *v;
    } else if (a == "--bin-dir") {
      o.bin_dir = *v;
    } else if (a == "--workdir") {
      o.workdir = *v;
    } else if (a == "--port-offset") {
      o.port_offset = std::stoi(*v);
    } else if (a == "--vehicles") {
      o.vehicles = std::stoi(*v);
    } else if (a == "--trips") {
      o.trips = std::stoi(*v);
    } else if (a == "--kill") {
      o.kills = std::stoi(*v);
    } else if (a == "--seed") {
      o.seed = static_cast<unsigned>(std::stoul(*v));
    } else if (a == "--token") {
      o.token = *v;
    } else {
      return usage();
    }
  }
  if (o.config.empty() || o.bin_dir.empty()) return usage();
  const auto t_start = Clock::now();
  auto say = [&](const std::string& line) { std::cout << line << std::endl; };

  // ---- workdir, PKI, config ----
  std::error_code ec;
  fs::remove_all(o.workdir, ec);
  fs::create_directories(o.workdir / "state");
  const fs::path pki = o.workdir / "pki";
  std::string pki_script;
  for (const fs::path& cand : {fs::path(LANEGATE_SCENARIO_SOURCE_DIR) / "scripts/make-demo-pki",
                               o.bin_dir / "../scripts/make-demo-pki"}) {
    if (fs::exists(cand)) {
      pki_script = cand.string();
      break;
    }
  }
  if (pki_script.empty() ||
      std::system((pki_script + " " + pki.string() + " >/dev/null 2>&1").c_str()) != 0) {
    std::cerr << "scenario: cannot make the demo PKI with scripts/make-demo-pki\n";
    return 1;
  }
  std::string serial = read_text(pki / "merchant.serial");
  serial.erase(std::remove_if(serial.begin(), serial.end(), ::isspace), serial.end());
  const fs::path config_file = o.workdir / "lanegate.toml";
  {
    std::ofstream out(config_file);
    out << rewrite_config(read_text(o.config), o, serial);
  }
  auto cfg = config::load_file(config_file);
  if (!cfg) {
    for (const auto& e : cfg.error()) std::cerr << e.to_string() << "\n";
    return 1;
  }

  // ---- traffic plan and the sandbox seed ----
  std::mt19937 rng(o.seed);
  std::vector<Vehicle> fleet;
  const char* letters = "ABCDEFGHJKLMNPQRSTUVWXYZ";
  const int bound_count = std::max(10, o.vehicles * 3 / 4);
  for (int i = 0; i < bound_count + 20; ++i) {
    Vehicle v;
    char buf[16];
    const bool green = i % 9 == 0;
    if (green) {
      std::snprintf(buf, sizeof buf, "D%05d", i);  // new-energy: 8 characters
    } else {
      std::snprintf(buf, sizeof buf, "%c%04d", letters[i % 24], i);
    }
    v.plate = std::string("粤B") + buf;
    v.colour_name = green ? "GREEN" : "BLUE";
    v.colour_code = green ? 4 : 0;
    v.bound = i < bound_count;
    v.overdue = v.bound && i % 23 == 5;
    fleet.push_back(v);
  }
  {
    json::array accounts, plates, contracts;
    for (std::size_t i = 0; i < fleet.size(); ++i) {
      const auto& v = fleet[i];
      if (!v.bound) continue;
      const std::string openid = "oSCENARIO" + std::to_string(i);
      accounts.push_back(json::object{{"openid", openid}, {"overdue", v.overdue}});
      plates.push_back(json::object{{"plate_number", v.plate},
                                    {"plate_color", v.colour_name},
                                    {"openid", openid},
                                    {"service_state", "NORMAL"},
                                    {"service_open_time", "2026-01-01T08:00:00+08:00"}});
      contracts.push_back(json::object{{"contract_id", "ETC" + std::to_string(100000000 + i)},
                                       {"plate_number", v.plate},
                                       {"plate_color", v.colour_name},
                                       {"openid", openid},
                                       {"state", "NORMAL"}});
    }
    json::object seed{{"merchants", json::array{json::object{{"mchid", cfg->provider.mchid},
                                                             {"appid", cfg->provider.appid},
                                                             {"certificate_file", "merchant.pem"},
                                                             {"apiv3_key_file", "apiv3.key"},
                                                             {"products", "PARKING,HIGHWAY"}}}},
                      {"accounts", accounts},
                      {"plates", plates},
                      {"etc_contracts", contracts}};
    std::ofstream out(o.workdir / "seed.json");
    out << json::serialize(seed);
  }

  // ---- the simulated world ----
  ProviderSandboxOptions po;
  po.pki_dir = pki;
  po.seed_file = o.workdir / "seed.json";
  po.db_file = o.workdir / "sandbox.db";
  {
    std::smatch m;
    const std::string url = cfg->provider.base_url;
    if (std::regex_search(url, m, std::regex(R"(:(\d+)$)"))) po.port = std::stoi(m[1].str());
  }
  po.deduction_delay_ms = 200;
  auto sandbox = ProviderSandbox::start(po);
  if (!sandbox) {
    std::cerr << "scenario: provider sandbox: " << sandbox.error().to_string() << "\n";
    return 1;
  }
  DevicesSimOptions dso;
  dso.control_port = -1;
  dso.barrier_open_delay_ms = 50;
  dso.barrier_hold_ms = 300;
  dso.utc_offset_minutes = cfg->gateway.utc_offset_minutes;
  auto devices = DevicesSim::start(*cfg, dso);
  if (!devices) {
    std::cerr << "scenario: devices: " << devices.error().to_string() << "\n";
    return 1;
  }

  // ---- lanegated ----
  Gateway gw(o.bin_dir / "lanegated", config_file, o.workdir / "lanegated.log");
  if (!gw.start()) return 1;
  Api api("127.0.0.1", cfg->api.listen_port, cfg->api.tls.has_value(), pki / "ca.pem", o.token);
  auto wait_healthy = [&] {
    for (int i = 0; i < 200; ++i) {
      if (api.healthy()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  if (!wait_healthy()) {
    std::cerr << "scenario: lanegated did not come up; see " << (o.workdir / "lanegated.log") << "\n";
    return 1;
  }
  say("lanegated up: " + std::to_string(cfg->lanes.size()) + " lanes, API on port " +
      std::to_string(cfg->api.listen_port));

  std::vector<std::string> entry_lanes, exit_lanes, toll_lanes;
  std::string meter;
  for (const auto& l : cfg->lanes) {
    if (l.mode == config::LaneMode::kParkingEntry) entry_lanes.push_back(l.id);
    if (l.mode == config::LaneMode::kParkingExit) exit_lanes.push_back(l.id);
    if (l.mode == config::LaneMode::kTollExit) toll_lanes.push_back(l.id);
    if (l.mode == config::LaneMode::kTaxi && meter.empty()) meter = l.meter;
  }
  std::vector<std::uint32_t> toll_entries;
  for (const auto& t : cfg->toll_tariffs) {
    for (const auto& f : t.fares) {
      if (f.vehicle_class == 1) toll_entries.push_back(f.entry_station);
    }
  }

  std::int64_t peak_queue = 0;
  auto status = [&]() { return api.get("/api/v1/status"); };
  // The gateway's answer to a vehicle shows on the lane's display (every decision writes
  // the plate there) and, when it passes, as an open command on the barrier. Watching
  // the simulated devices costs the gateway nothing, unlike polling its API.
  std::map<std::string, const config::LaneSection*> lane_cfg;
  for (const auto& l : cfg->lanes) lane_cfg[l.id] = &l;
  Clock::time_point restored_at{};
  Clock::time_point last_status_poll{};
  Clock::time_point drained_at{};
  auto poll_status = [&] {
    if (Clock::now() - last_status_poll < 300ms) return;
    last_status_poll = Clock::now();
    if (auto st = status()) {
      if (const json::object* q = jobj(*st, "queue")) {
        peak_queue = std::max(peak_queue, jint(*q, "live_rows"));
        if (restored_at != Clock::time_point{} && drained_at == Clock::time_point{} &&
            jint(*q, "pending") + jint(*q, "leased") <= 3) {
          drained_at = Clock::now();
        }
      }
    }
  };
  auto await_decision = [&](const std::string& lane, const std::string& plate, const std::string& before_text,
                            int before_opens) {
    const config::LaneSection* l = lane_cfg[lane];
    const auto deadline = Clock::now() + 4s;
    while (Clock::now() < deadline) {
      if (l != nullptr && !l->display.empty()) {
        auto text = devices.value()->display_text(l->display);
        if (text && *text != before_text && text->find(plate) != std::string::npos) return true;
      }
      if (l != nullptr && !l->barrier.empty()) {
        auto b = devices.value()->barrier(l->barrier);
        if (b && b->open_commands > before_opens) return true;
      }
      std::this_thread::sleep_for(5ms);
    }
    return false;
  };
  // A vehicle at a lane: the camera reads it and the gateway decides. When no decision
  // comes (the gateway was restarting), the camera reads the waiting vehicle again, as
  // a real camera does for a vehicle that stays in front of it.
  auto drive = [&](const std::string& lane, const Vehicle& v) {
    const config::LaneSection* l = lane_cfg[lane];
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::string before_text;
      int before_opens = 0;
      if (l != nullptr && !l->display.empty()) before_text = devices.value()->display_text(l->display).value_or("");
      if (l != nullptr && !l->barrier.empty()) {
        if (auto b = devices.value()->barrier(l->barrier)) before_opens = b->open_commands;
      }
      VehicleArrival va;
      va.lane = lane;
      va.plate = v.plate;
      va.colour = v.colour_code;
      (void)devices.value()->vehicle_arrives(va);
      const auto t0 = Clock::now();
      const bool decided = await_decision(lane, v.plate, before_text, before_opens);
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
      if (waited > 1000 && std::getenv("LANEGATE_SCENARIO_TRACE") != nullptr) {
        std::fprintf(stderr, "slow: lane %s plate %s waited %lld ms decided=%d\n", lane.c_str(), v.plate.c_str(),
                     static_cast<long long>(waited), decided ? 1 : 0);
      }
      poll_status();
      if (decided) break;
    }
    (void)devices.value()->vehicle_leaves(lane);
  };

  std::vector<int> kill_points;
  for (int k = 0; k < o.kills; ++k) kill_points.push_back(1 + static_cast<int>(rng() % std::max(1, o.vehicles - 1)));
  std::sort(kill_points.begin(), kill_points.end());
  int kills_done = 0;
  const int outage_from = o.outage ? o.vehicles * 2 / 5 : -1;
  const int outage_to = o.outage ? o.vehicles * 3 / 5 : -1;
  int entries = 0, exits = 0, tolls = 0;

  std::deque<Vehicle> parked;
  auto progress = [&](int i) {
    if (o.quiet) return;
    std::printf("\r  vehicles %d/%d  entries %d  exits %d  toll %d  queue peak %lld  %s   ", i, o.vehicles, entries,
                exits, tolls, static_cast<long long>(peak_queue),
                (i >= outage_from && i < outage_to) ? "UPLINK DOWN" : "uplink up  ");
    std::fflush(stdout);
  };
  say("driving " + std::to_string(o.vehicles) + " vehicles and " + std::to_string(o.trips) + " taxi trips" +
      (o.outage ? ", uplink cut from vehicle " + std::to_string(outage_from) + " to " + std::to_string(outage_to) : ""));
  std::size_t next_plate = 0;
  int trips_done = 0;
  for (int i = 0; i < o.vehicles; ++i) {
    if (i == outage_from) {
      ProviderFaults f = sandbox.value()->faults();
      f.refuse_connections = true;
      sandbox.value()->set_faults(f);
    }
    if (i == outage_to) {
      ProviderFaults f = sandbox.value()->faults();
      f.refuse_connections = false;
      sandbox.value()->set_faults(f);
      restored_at = Clock::now();
    }
    while (kills_done < static_cast<int>(kill_points.size()) && kill_points[kills_done] == i) {
      gw.stop(SIGKILL);
      ++kills_done;
      if (!gw.start() || !wait_healthy()) {
        std::cerr << "\nscenario: lanegated did not restart\n";
        return 1;
      }
    }
    // Every 10th vehicle is a toll-exit vehicle; the others use the parking lot. A lot
    // vehicle leaves once three others have entered.
    if (!toll_lanes.empty() && !toll_entries.empty() && i % 10 == 9) {
      const Vehicle& v = fleet[next_plate++ % fleet.size()];
      const std::string lane = toll_lanes[0];
      RoadsideEntry re;
      re.lane = lane;
      re.entry_station = toll_entries[rng() % toll_entries.size()];
      re.entry_time = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() -
                      3600;
      re.vehicle_class = 1;
      const auto idx = static_cast<std::size_t>(&v - fleet.data());
      re.contract_id = "ETC" + std::to_string(100000000 + idx);
      (void)devices.value()->roadside_entry(re);
      drive(lane, v);
      ++tolls;
    } else if (parked.size() < 3 || i % 2 == 0) {
      Vehicle v = fleet[next_plate++ % fleet.size()];
      const std::string lane = entry_lanes[static_cast<std::size_t>(entries) % entry_lanes.size()];
      drive(lane, v);
      parked.push_back(v);
      ++entries;
    } else {
      Vehicle v = parked.front();
      parked.pop_front();
      const std::string lane = exit_lanes[static_cast<std::size_t>(exits) % exit_lanes.size()];
      drive(lane, v);
      ++exits;
    }
    if (!meter.empty() && trips_done < o.trips && i % std::max(1, o.vehicles / std::max(1, o.trips)) == 0) {
      SimTrip t;
      t.meter = meter;
      t.fare_fen = 1000 + 10 * static_cast<std::int64_t>(rng() % 500);
      t.payment_type = (trips_done % 3 == 0) ? 0 : 1;
      (void)devices.value()->end_trip(t);
      ++trips_done;
    }
    progress(i + 1);
  }
  // The rest of the lot leaves.
  while (!parked.empty()) {
    Vehicle v = parked.front();
    parked.pop_front();
    const std::string lane = exit_lanes[static_cast<std::size_t>(exits) % exit_lanes.size()];
    drive(lane, v);
    ++exits;
    progress(o.vehicles);
  }
  if (restored_at == Clock::time_point{}) {
    ProviderFaults f = sandbox.value()->faults();
    f.refuse_connections = false;
    sandbox.value()->set_faults(f);
    restored_at = Clock::now();
  }
  if (!o.quiet) std::printf("\n");

  // ---- drain ----
  say("waiting for the outbox to drain and every charge to settle");
  json::object final_status;
  bool drained = false;
  const auto drain_deadline = Clock::now() + 120s;
  while (Clock::now() < drain_deadline) {
    if (auto s = status()) {
      const json::object* q = jobj(*s, "queue");
      const std::int64_t live = q ? jint(*q, "pending") + jint(*q, "leased") : -1;
      if (q) peak_queue = std::max(peak_queue, jint(*q, "live_rows"));
      if (live == 0 && jint(*s, "open_charges") == 0) {
        final_status = *s;
        drained = true;
        break;
      }
      if (!o.quiet) {
        std::printf("\r  outbox %lld items, open charges %lld   ", static_cast<long long>(live),
                    static_cast<long long>(jint(*s, "open_charges")));
        std::fflush(stdout);
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  if (drained_at == Clock::time_point{}) drained_at = Clock::now();
  const double drain_s = std::chrono::duration<double>(drained_at - restored_at).count();
  if (!o.quiet) std::printf("\n");

  // ---- accounting ----
  std::map<std::string, json::object> ours;
  std::int64_t after = 0;
  for (;;) {
    auto page = api.get("/api/v1/transactions?limit=1000&after=" + std::to_string(after));
    if (!page) break;
    auto it = page->find("items");
    if (it == page->end() || !it->value().is_array() || it->value().as_array().empty()) break;
    for (const auto& item : it->value().as_array()) {
      const auto& t = item.as_object();
      ours[std::string(t.at("out_trade_no").as_string())] = t;
      after = std::max(after, jint(t, "id"));
    }
    if (page->find("next_after") == page->end()) break;
  }
  auto theirs = sandbox.value()->transactions();
  std::map<std::string, SandboxTransaction> at_sandbox;
  if (theirs) {
    for (const auto& t : *theirs) at_sandbox[t.out_trade_no] = t;
  }
  std::vector<std::string> problems;
  Money charged, settled_ours, settled_theirs, cash, arrears;
  std::int64_t provider_charges = 0;
  for (const auto& [no, t] : ours) {
    const std::string state(t.at("state").as_string());
    const Money amount = Money::from_fen(jint(t, "amount_fen"));
    if (state == "CASH") {
      cash = cash.add(amount).value_or(cash);
      continue;
    }
    if (state == "VOID") {
      // Fell back and never reached the provider: no money moved.
      if (at_sandbox.contains(no)) problems.push_back(no + ": VOID at lanegate but present at the provider");
      continue;
    }
    ++provider_charges;
    charged = charged.add(amount).value_or(charged);
    if (state == "SUCCESS") settled_ours = settled_ours.add(amount).value_or(settled_ours);
    if (t.at("arrears").as_bool()) arrears = arrears.add(amount).value_or(arrears);
    auto it = at_sandbox.find(no);
    if (it == at_sandbox.end()) {
      if (t.at("decision").as_string() != "fallback") problems.push_back(no + ": recorded by lanegate, missing at the provider");
      continue;
    }
    if (it->second.amount_fen != amount.fen()) {
      problems.push_back(no + ": amount " + amount.to_string() + " at lanegate, " +
                         Money::from_fen(it->second.amount_fen).to_string() + " at the provider");
    }
    if (it->second.trade_state != state) {
      problems.push_back(no + ": state " + state + " at lanegate, " + it->second.trade_state + " at the provider");
    }
  }
  for (const auto& [no, t] : at_sandbox) {
    if (t.trade_state == "SUCCESS") settled_theirs = settled_theirs.add(Money::from_fen(t.amount_fen)).value_or(settled_theirs);
    if (!ours.contains(no)) problems.push_back(no + ": at the provider, unknown to lanegate");
    if (t.submissions > 1 && !ours.contains(no)) problems.push_back(no + ": submitted twice");
  }
  if (!drained) problems.push_back("the outbox did not drain within 120 s");

  const json::object* passages = jobj(final_status, "passages");
  const json::object* latency = jobj(final_status, "decision_latency");
  auto lat = [&](const char* d, const char* k) -> std::string {
    if (latency == nullptr) return "-";
    const json::object* x = jobj(*latency, d);
    if (x == nullptr) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(jint(*x, k)) / 1000.0);
    return buf;
  };
  const double total_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::printf("\n== lanegate demo summary\n");
  if (passages != nullptr) {
    std::printf("  passages   free %lld  online %lld  offline %lld  fallback %lld  manual %lld\n",
                static_cast<long long>(jint(*passages, "free")), static_cast<long long>(jint(*passages, "pass_online")),
                static_cast<long long>(jint(*passages, "pass_offline")),
                static_cast<long long>(jint(*passages, "fallback")), static_cast<long long>(jint(*passages, "manual")));
  }
  std::printf("  taxi trips %d (paid at the meter: %s yuan)\n", trips_done, cash.to_string().c_str());
  std::printf("  outbox     peak depth %lld items, backlog drained %.1f s after the uplink returned\n",
              static_cast<long long>(peak_queue), drain_s);
  std::printf("  charges    %lld provider charges, %s yuan recorded by lanegate\n",
              static_cast<long long>(provider_charges), charged.to_string().c_str());
  std::printf("  settled    %s yuan by lanegate, %s yuan at the provider sandbox\n", settled_ours.to_string().c_str(),
              settled_theirs.to_string().c_str());
  std::printf("  arrears    %s yuan (offline passes whose charge failed)\n", arrears.to_string().c_str());
  std::printf("  decision   online p50 %s p99 %s   offline p50 %s p99 %s\n", lat("pass_online", "p50_us").c_str(),
              lat("pass_online", "p99_us").c_str(), lat("pass_offline", "p50_us").c_str(),
              lat("pass_offline", "p99_us").c_str());
  if (o.kills > 0) std::printf("  crashes    lanegated SIGKILLed and restarted %d times\n", kills_done);
  std::printf("  run time   %.1f s; logs in %s\n", total_s, o.workdir.c_str());
  if (settled_ours != settled_theirs) {
    problems.push_back("settled totals differ: " + settled_ours.to_string() + " vs " + settled_theirs.to_string());
  }
  gw.stop(SIGTERM);
  if (!problems.empty()) {
    std::printf("\nUNACCOUNTED (%zu):\n", problems.size());
    for (const auto& p : problems) std::printf("  %s\n", p.c_str());
    return 1;
  }
  std::printf("  every fen accounted for\n");
  return 0;
}

}  // namespace lanegate::sim
