// `lanegate-sim devices`: the simulated lane hardware as a process.
#include <signal.h>

#include <charconv>
#include <iostream>

#include "config/config.h"
#include "sim/devices.h"

namespace lanegate::sim {

namespace {
constexpr const char* kUsage =
    "usage: lanegate-sim devices --config FILE [--control-port N] [--gateway HOST:PORT]\n"
    "         [--camera-token ID=TOKEN]... [--heartbeat-s N]\n"
    "  --gateway       the gateway's camera receiver for push cameras (default: the config's\n"
    "                  [cameras] listener, else its [api] listener)\n"
    "  --camera-token  a push camera's plain token (the config holds only its SHA-256)\n"
    "  --heartbeat-s   Vzenith and Dahua heartbeat interval (default 30; at most a third of\n"
    "                  a camera's heartbeat_timeout_s; 0: none)\n";
}  // namespace

int run_devices_sim(std::span<const std::string> args) {
  std::string config_path;
  DevicesSimOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--config" && i + 1 < args.size()) {
      config_path = args[++i];
    } else if (a == "--control-port" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      int port = -1;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
      if (ec != std::errc() || p != v.data() + v.size() || port < 0 || port > 65535) {
        std::cerr << "lanegate-sim devices: --control-port: want 0..65535, got \"" << v << "\"\n";
        return 2;
      }
      options.control_port = port;
    } else if (a == "--gateway" && i + 1 < args.size()) {
      // HOST:PORT of the gateway's camera receiver (push cameras).
      const std::string& v = args[++i];
      const auto colon = v.rfind(':');
      int port = -1;
      bool ok = colon != std::string::npos && colon > 0;
      if (ok) {
        const char* end = v.data() + v.size();
        auto [p, ec] = std::from_chars(v.data() + colon + 1, end, port);
        ok = ec == std::errc() && p == end && port >= 1 && port <= 65535;
      }
      if (!ok) {
        std::cerr << "lanegate-sim devices: --gateway: want HOST:PORT, got \"" << v << "\"\n";
        return 2;
      }
      options.gateway_host = v.substr(0, colon);
      options.gateway_port = port;
    } else if (a == "--camera-token" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      const auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
        std::cerr << "lanegate-sim devices: --camera-token: want ID=TOKEN\n";
        return 2;
      }
      options.camera_tokens[v.substr(0, eq)] = v.substr(eq + 1);
    } else if (a == "--heartbeat-s" && i + 1 < args.size()) {
      const std::string& v = args[++i];
      int s = -1;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
      if (ec != std::errc() || p != v.data() + v.size() || s < 0 || s > 3600) {
        std::cerr << "lanegate-sim devices: --heartbeat-s: want 0..3600, got \"" << v << "\"\n";
        return 2;
      }
      options.heartbeat_interval_ms = s * 1000;
    } else {
      std::cerr << kUsage;
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << kUsage;
    return 2;
  }

  auto cfg = config::load_file(config_path);
  if (!cfg) {
    for (const auto& e : cfg.error()) {
      std::cerr << e.to_string() << "\n";
    }
    return 2;
  }
  options.utc_offset_minutes = cfg->gateway.utc_offset_minutes;
  // Block the stop signals before any thread starts, so only sigwait() sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto sim = DevicesSim::start(*cfg, options);
  if (!sim) {
    std::cerr << "lanegate-sim devices: " << sim.error().to_string() << "\n";
    return 1;
  }
  for (const auto& b : cfg->buses) {
    if (b.transport == config::Transport::kTcp) {
      if (auto port = (*sim)->tcp_port(b.id)) {
        std::cout << "bus " << b.id << " tcp=127.0.0.1:" << *port << "\n";
      }
    } else if (auto path = (*sim)->pty_path(b.id)) {
      std::cout << "bus " << b.id << " rtu=" << b.serial_device << " -> " << *path << "\n";
    }
  }
  for (const auto& m : cfg->meters) {
    if (auto path = (*sim)->pty_path(m.id)) {
      std::cout << "meter " << m.id << " " << m.device << " -> " << *path << "\n";
    }
  }
  for (const auto& d : cfg->devices) {
    if (d.push()) {
      std::cout << "camera " << d.id << " " << d.protocol << " serial=" << d.serial
                << (options.camera_tokens.contains(d.id) ? "" : " (no --camera-token: pushes fail)")
                << "\n";
    }
  }
  std::cout << "ready control=http://127.0.0.1:" << (*sim)->control_port() << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  (*sim)->stop();
  return 0;
}

}  // namespace lanegate::sim
